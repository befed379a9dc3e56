from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import (
    Money,
    decimal_places,
    format_amount,
    format_plain,
    parse_amount,
    round_down,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", Decimal("100")),
        ("100.5", Decimal("100.5")),
        ("0.01", Decimal("0.01")),
        ("0", Decimal(0)),
    ],
)
def test_parses_plain_decimal_strings(text: str, expected: Decimal) -> None:
    assert parse_amount(text, "RUB") == expected


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "1E3",
        "1.234",
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "1,5",
        "NaN",
        "Infinity",
        "0x10",
        ".5",
        "5.",
        "--1",
        "1" * 19,
        # Python's ``$`` matches before a trailing newline: the whole string must match.
        "100\n",
        "0.5\n",
    ],
)
def test_rejects_anything_else(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_amount(text, "RUB")
    assert error.value.code == "invalid_amount"


def test_negative_only_when_allowed() -> None:
    with pytest.raises(InvalidInput):
        parse_amount("-5", "RUB")
    assert parse_amount("-5.50", "RUB", allow_negative=True) == Decimal("-5.50")
    assert parse_amount("-0", "RUB", allow_negative=True) == Decimal(0)


def test_currency_minor_units() -> None:
    assert parse_amount("100", "JPY") == 100
    with pytest.raises(InvalidInput):
        parse_amount("100.5", "JPY")
    with pytest.raises(InvalidInput) as error:
        parse_amount("1", "XXX")
    assert error.value.code == "unknown_currency"


def test_formatting() -> None:
    assert format_amount(Decimal("1234.5"), "RUB") == "1234.50"
    assert format_amount(Decimal("7"), "JPY") == "7"
    assert format_plain(Decimal("30.00")) == "30"
    assert format_plain(Decimal("12.50")) == "12.5"
    assert round_down(Decimal("299.99"), 0) == Decimal("299")
    assert Money.parse("10.5", "RUB").wire == "10.50"


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False))
def test_format_then_parse_round_trips(value: Decimal) -> None:
    assert parse_amount(format_amount(value, "RUB"), "RUB") == value


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("3000", 0),
        ("3000.00", 0),
        ("3000.50", 1),
        ("0.05", 2),
        ("1E+3", 0),
        ("0.000", 0),
        # Past the context's 28 digits: counted exactly, never rounded away.
        ("1.0000000000000000000000000000001", 31),
    ],
)
def test_decimal_places_a_value_needs(text: str, places: int) -> None:
    assert decimal_places(Decimal(text)) == places
