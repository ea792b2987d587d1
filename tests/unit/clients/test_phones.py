import pytest

from crm_api.clients.phones import (
    InvalidPhone,
    PhoneSearch,
    looks_like_phone,
    normalize,
    phone_search,
)


@pytest.mark.parametrize(
    "typed",
    [
        "8 916 123-45-67",
        "+7 (916) 123-45-67",
        "916 123 45 67",
        "79161234567",
        "8(916)1234567",
        "+7-916-123-45-67",
        " 8 916 123 45 67 ",
    ],
)
def test_russian_forms_of_one_subscriber_are_one_number(typed: str) -> None:
    assert normalize(typed, "RU") == "+79161234567"


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+1 (650) 253-0000", "+16502530000"),
        ("+49 30 901820", "+4930901820"),
        ("+375 29 123-45-67", "+375291234567"),
        ("8 (495) 123-45-67", "+74951234567"),
    ],
)
def test_foreign_and_landline_numbers(typed: str, e164: str) -> None:
    assert normalize(typed, "RU") == e164


@pytest.mark.parametrize("bad", ["", "123", "abc", "+7 916", "8 800 000", "++7 916 123 45 67 8"])
def test_invalid_numbers_are_refused_with_the_input_named(bad: str) -> None:
    with pytest.raises(InvalidPhone) as err:
        normalize(bad, "RU")
    assert repr(bad) in str(err.value)


def test_search_fragments() -> None:
    # A fragment with the trunk 8 matches at the number's start as +7, or as typed.
    assert phone_search("8 916 12", "RU") == PhoneSearch("891612", prefix="791612")
    # A tail that starts with 8 is not a trunk prefix: "838 24 30" is …838-24-30.
    assert phone_search("838 24 30", "RU") == PhoneSearch("8382430", prefix="7382430")
    assert phone_search("+7 916", "RU") == PhoneSearch("7916")
    assert phone_search("45-67", "RU") == PhoneSearch("4567")
    # Only a whole number gets the trunk-prefix rule outright.
    assert phone_search("8 (916) 123-45-67", "RU") == PhoneSearch("79161234567")
    assert looks_like_phone("916 12")
    assert not looks_like_phone("Иванов")
    assert not looks_like_phone("12")
