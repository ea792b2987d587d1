"""Text → parts, checked against an independent decoder (smpplib's GSM tables are not
used by the code under test)."""

from __future__ import annotations

import pytest

from sms_gateway.encoding import (
    DC_DEFAULT,
    DC_UCS2,
    ESM_UDHI,
    decode_gsm7,
    decode_text,
    encode_gsm7,
    is_gsm7,
    make_parts,
)
from sms_gateway.udh import split_udh


def _join(parts: list, coding: int) -> str:
    text = ""
    for part in parts:
        payload = part.short_message
        if part.esm_class & ESM_UDHI:
            _, payload = split_udh(payload)
        text += decode_text(payload, coding)
    return text


def test_latin_text_of_160_is_one_gsm7_part() -> None:
    parts = make_parts("a" * 160, reference=1)
    assert len(parts) == 1
    assert parts[0].data_coding == DC_DEFAULT
    assert parts[0].esm_class == 0
    assert parts[0].short_message == b"a" * 160


def test_161_latin_chars_become_two_parts_with_udh() -> None:
    parts = make_parts("b" * 161, reference=42)
    assert [p.esm_class for p in parts] == [ESM_UDHI, ESM_UDHI]
    assert parts[0].short_message[:6] == bytes([5, 0, 3, 42, 2, 1])
    assert parts[1].short_message[:6] == bytes([5, 0, 3, 42, 2, 2])
    assert len(parts[0].short_message) == 6 + 153
    assert _join(parts, DC_DEFAULT) == "b" * 161


def test_cyrillic_goes_ucs2_and_140_chars_make_three_parts() -> None:
    text = "Здравствуйте, Иван! " * 7  # 140 characters
    parts = make_parts(text, reference=7)
    assert {p.data_coding for p in parts} == {DC_UCS2}
    assert len(parts) == 3
    assert all(len(p.short_message) <= 140 for p in parts)
    assert _join(parts, DC_UCS2) == text


def test_seventy_cyrillic_chars_fit_one_part() -> None:
    parts = make_parts("ж" * 70, reference=0)
    assert len(parts) == 1 and parts[0].esm_class == 0
    assert parts[0].short_message == ("ж" * 70).encode("utf-16-be")


def test_extension_characters_count_double_and_are_not_split() -> None:
    text = "€" * 80  # 160 septets: exactly one message
    assert is_gsm7(text)
    assert len(make_parts(text, 0)) == 1
    parts = make_parts("x" + "€" * 80, 0)  # 161 septets: two parts, no escape cut in two
    assert len(parts) == 2
    for p in parts:
        _, body = split_udh(p.short_message)
        assert not body.endswith(b"\x1b")
    assert _join(parts, DC_DEFAULT) == "x" + "€" * 80


def test_emoji_surrogate_pairs_stay_in_one_part() -> None:
    text = "😀" * 40  # 80 UTF-16 units
    parts = make_parts(text, 0)
    assert len(parts) == 2
    assert _join(parts, DC_UCS2) == text


def test_gsm7_round_trip_of_the_basic_table() -> None:
    text = "@£$¥èéù Hello {world} [x] ~ | \\ ^ € ÄÖÑÜ§¿"
    assert decode_gsm7(encode_gsm7(text)) == text


def test_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="255 parts"):
        make_parts("я" * 67 * 256, 0)
