"""Phone numbers: every local form of one subscriber becomes one E.164 string.

`8 916 123-45-67`, `+7 (916) 123-45-67` and `916 123 45 67` are the same client in
Russia; foreign numbers must carry their country code."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_NON_DIGITS = re.compile(r"\D")
MIN_FRAGMENT_DIGITS = 3


class InvalidPhone(ValueError):
    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"invalid phone number {raw!r}: {reason}")
        self.raw = raw
        self.reason = reason


# The same callers ring (and are looked up, and write) again and again, and parsing a
# number is ~30 µs of the lookup by number's ~1 ms of CPU. Invalid input is not kept.
@functools.lru_cache(maxsize=4096)
def normalize(raw: str, region: str = "RU") -> str:
    """The E.164 form of a number typed or received in any common form."""
    text = raw.strip()
    if not text:
        raise InvalidPhone(raw, "empty")
    digits = _NON_DIGITS.sub("", text)
    # Russian trunk prefix 8 and a bare 7 without "+": phonenumbers reads "8…" fine for
    # RU but a bare "7916…" as national; give it the "+" it lost on the way.
    if region == "RU" and not text.startswith("+") and len(digits) == 11 and digits[0] == "7":
        text = "+" + digits
    elif text.startswith("00"):
        text = "+" + digits[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidPhone(raw, str(exc)) from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(raw, "not a possible number")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(raw, "not a valid number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def try_normalize(raw: str | None, region: str = "RU") -> str | None:
    if raw is None:
        return None
    try:
        return normalize(raw, region)
    except InvalidPhone:
        return None


def digits_of(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def looks_like_phone(text: str) -> bool:
    """A search string that is a number or a part of one (digits and separators)."""
    stripped = text.strip()
    return (
        bool(stripped)
        and re.fullmatch(r"[\d\s()+\-.]+", stripped) is not None
        and (len(digits_of(stripped)) >= MIN_FRAGMENT_DIGITS)
    )


@dataclass(frozen=True, slots=True)
class PhoneSearch:
    """What a typed fragment of a number matches in the stored E.164 digits."""

    anywhere: str  # the digits as typed: "838 24 30" is the number's tail
    prefix: str | None = None  # a Russian fragment typed with the trunk 8: "8 916 12"


def phone_search(fragment: str, region: str = "RU") -> PhoneSearch:
    """A whole local number is searched as its E.164 digits. Only a fragment may start
    with the trunk prefix 8 or be a tail that happens to start with 8, so it matches
    either way: as typed anywhere, or with 8 read as +7 at the number's start."""
    full = try_normalize(fragment, region)
    if full is not None:
        return PhoneSearch(full.lstrip("+"))
    digits = digits_of(fragment)
    if region == "RU" and fragment.strip().startswith("8") and len(digits) >= 4:
        return PhoneSearch(digits, prefix="7" + digits[1:])
    return PhoneSearch(digits)


def is_mobile(e164: str) -> bool:
    number = phonenumbers.parse(e164)
    return phonenumbers.number_type(number) in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def display(e164: str) -> str:
    """International human form: +7 916 123-45-67."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)
