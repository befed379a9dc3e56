"""Wire types shared by the services' contracts: money strings and the bill."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import is_known_currency, parse_amount

# Validation errors whose pydantic type is one of these keep it as their error code.
CUSTOM_ERROR_CODES = frozenset({"invalid_amount", "unknown_currency", "amount_not_positive"})

# PostgreSQL cannot store a NUL character in text: such input is refused at the edge as a
# 400 instead of failing in the database as a 500. (pydantic matches a pattern with Rust's
# regex, where ``$`` is only the end of the string, so the whole string is checked.)
STORABLE_TEXT = r"^[^\x00]*$"

AmountText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32),
    Field(
        description="A decimal string, at most the currency's minor-unit digits",
        examples=["100.50"],
    ),
]
CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 code", examples=["RUB"]),
]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_amount(text: str, currency: str, *, allow_negative: bool, positive: bool) -> Decimal:
    try:
        value = parse_amount(text, currency, allow_negative=allow_negative)
    except InvalidInput as exc:
        raise PydanticCustomError(exc.code, exc.message) from None
    if positive and value <= 0:
        raise PydanticCustomError("amount_not_positive", "amount must be greater than zero")
    return value


def check_currency(currency: str) -> None:
    if not is_known_currency(currency):
        raise PydanticCustomError(
            "unknown_currency", "unknown currency {currency}", {"currency": currency}
        )


def check_positive_amount(text: str, currency: str) -> Decimal:
    """A known currency and an amount above zero in its minor units."""
    check_currency(currency)
    return check_amount(text, currency, allow_negative=False, positive=True)
