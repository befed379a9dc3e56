"""cashback's HTTP contract."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints, model_validator

from qrpay.kernel.schemas import AmountText, CurrencyCode, WireModel, check_amount, check_currency


class CashbackCode(StrEnum):
    """The ``code`` of cashback's error answers."""

    CASHBACK_UNAVAILABLE = "cashback_unavailable"
    ACCRUAL_BUSY = "accrual_busy"
    ACCRUAL_MISMATCH = "accrual_mismatch"


UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AccrualIn(WireModel):
    user_id: UserId
    amount: AmountText
    currency: CurrencyCode
    # Where it came from, for the history: e.g. the restaurant's client_id.
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "restaurant"

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> AccrualIn:
        check_currency(self.currency)
        check_amount(self.amount, self.currency, allow_negative=False, positive=True)
        return self


class Accrual(WireModel):
    order_id: str
    user_id: str
    amount: str
    currency: str
    source: str
    created_at: datetime


class AccrualResult(WireModel):
    accrual: Accrual
    # False when this order already had exactly this accrual (a repeat).
    created: bool


class Balance(WireModel):
    currency: str
    amount: str


class BalanceResponse(WireModel):
    user_id: str
    balances: list[Balance]


class HistoryResponse(WireModel):
    user_id: str
    accruals: list[Accrual]
