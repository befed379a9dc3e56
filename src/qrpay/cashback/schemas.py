"""cashback's HTTP contract."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from qrpay.kernel.schemas import AmountText, CurrencyCode, WireModel, check_positive_amount


class CashbackCode(StrEnum):
    """The ``code`` of cashback's error answers."""

    CASHBACK_UNAVAILABLE = "cashback_unavailable"
    ACCRUAL_BUSY = "accrual_busy"
    ACCRUAL_MISMATCH = "accrual_mismatch"
    ACCRUAL_NOT_FOUND = "accrual_not_found"
    CURRENCY_MISMATCH = "currency_mismatch"
    REVERSAL_EXCEEDS_ACCRUAL = "reversal_exceeds_accrual"
    REVERSAL_MISMATCH = "reversal_mismatch"


class EntryKind(StrEnum):
    """What a line of a user's history is."""

    ACCRUAL = "accrual"
    # What a reversal took from the balance, and what it left owed (``debt``).
    REVERSAL = "reversal"
    # The part of an accrual that paid the user's debt off, recorded beside the accrual.
    REPAYMENT = "repayment"


UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AccrualIn(WireModel):
    user_id: UserId
    amount: AmountText
    currency: CurrencyCode
    # Where it came from, for the history: e.g. the restaurant's client_id.
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "restaurant"

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> AccrualIn:
        check_positive_amount(self.amount, self.currency)
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


class ReversalIn(WireModel):
    amount: AmountText
    currency: CurrencyCode

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> ReversalIn:
        check_positive_amount(self.amount, self.currency)
        return self


class Reversal(WireModel):
    reversal_id: str
    accrual_key: str
    user_id: str
    amount: str
    currency: str
    # taken + debt == amount: what came off the balance, and what was left owed.
    taken: str
    debt: str
    created_at: datetime


class ReversalResult(WireModel):
    reversal: Reversal
    # False when this reversal_id already had exactly this reversal (a repeat).
    created: bool


class Repayment(WireModel):
    # The accrual that paid it (at most one repayment per accrual).
    accrual_key: str
    user_id: str
    amount: str
    currency: str
    created_at: datetime


class Balance(WireModel):
    currency: str
    amount: str
    # The user's open debt in this currency (reversals not yet repaid by accruals). The
    # default reads an answer of a cashback from before reversals.
    debt: str = "0"


class BalanceResponse(WireModel):
    user_id: str
    balances: list[Balance]


class HistoryEntry(WireModel):
    kind: EntryKind
    # accrual: its own key; reversal: the accrual it reverses; repayment: the accrual that
    # paid it.
    accrual_key: str
    currency: str
    # accrual: as accrued; reversal: as asked (``taken`` + ``debt``); repayment: as repaid.
    amount: str
    created_at: datetime
    reversal_id: str | None = None
    taken: str | None = None
    debt: str | None = None
    source: str | None = None


class HistoryResponse(WireModel):
    user_id: str
    # Newest first, as before reversals.
    accruals: list[Accrual]
    # Every accrual, reversal and debt repayment, oldest first.
    entries: Annotated[list[HistoryEntry], Field(default_factory=list)]


class OrderCashback(WireModel):
    """An order's accruals (keys ``order_id`` or ``order_id.<invoice>``), their reversals and
    the debt repayments they made, each oldest first: for support."""

    order_id: str
    accruals: list[Accrual]
    reversals: list[Reversal]
    repayments: list[Repayment]
