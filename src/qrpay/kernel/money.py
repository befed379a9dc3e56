"""Money: ``Decimal`` amounts with a currency, parsed from and printed as strings.

The wire format is a plain decimal string: digits, an optional leading minus
and at most the currency's minor-unit digits after the point. No exponents,
no floats, no thousands separators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from qrpay.kernel.errors import InvalidInput

# ISO 4217 minor units of the currencies a restaurant may accept.
MINOR_UNITS: dict[str, int] = {
    "RUB": 2,
    "BYN": 2,
    "KZT": 2,
    "UZS": 2,
    "AMD": 2,
    "GEL": 2,
    "KGS": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "ILS": 2,
    "RSD": 2,
    "TRY": 2,
    "AED": 2,
    "JPY": 0,
}

# Matched with ``fullmatch``: ``$`` would also match before a trailing newline ("100\n").
_AMOUNT_RE = re.compile(r"(-?)(0|[1-9][0-9]{0,17})(?:\.([0-9]+))?")


def is_known_currency(code: str) -> bool:
    return code in MINOR_UNITS


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise InvalidInput(f"unknown currency {currency!r}", code="unknown_currency") from None


def parse_amount(text: str, currency: str, *, allow_negative: bool = False) -> Decimal:
    """Parse a wire amount, rejecting anything that is not a plain decimal string."""
    places = minor_units(currency)
    if not isinstance(text, str):
        raise InvalidInput("an amount must be a decimal string", code="invalid_amount")
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise InvalidInput(f"{text[:40]!r} is not a decimal amount", code="invalid_amount")
    sign, _, fraction = match.groups()
    if fraction is not None and len(fraction) > places:
        raise InvalidInput(
            f"{currency} amounts have at most {places} decimal places",
            code="invalid_amount",
        )
    if sign and not allow_negative:
        raise InvalidInput("amount must not be negative", code="invalid_amount")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already rules this out
        raise InvalidInput(
            f"{text[:40]!r} is not a decimal amount", code="invalid_amount"
        ) from None
    if value == 0 and sign:
        value = Decimal(0)
    return value


def quantize(value: Decimal, currency: str, *, rounding: str = ROUND_HALF_UP) -> Decimal:
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return value.quantize(exponent, rounding=rounding)


def format_amount(value: Decimal, currency: str) -> str:
    """Print an amount with exactly the currency's minor-unit digits: ``"1234.50"``."""
    return f"{quantize(value, currency):f}"


def round_down(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def decimal_places(value: Decimal) -> int:
    """The places after the point ``value`` needs: ``3000.50`` needs 1, ``3000.00`` none.

    Exact at any size (no rounding to the context's precision, as ``normalize`` would).
    """
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite amount")
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if trailing_zeros == len(digits):
        return 0  # zero
    return max(0, -(exponent + trailing_zeros))


def format_plain(value: Decimal) -> str:
    """Print a Decimal without exponent and without trailing fractional zeros."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str, *, allow_negative: bool = False) -> Money:
        return cls(parse_amount(amount, currency, allow_negative=allow_negative), currency)

    def __str__(self) -> str:
        return f"{format_amount(self.amount, self.currency)} {self.currency}"

    @property
    def wire(self) -> str:
        return format_amount(self.amount, self.currency)
