"""cashback's HTTP routes: parse, call the service, serialize. Paths match ``cashback.client``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from qrpay.cashback import domain
from qrpay.cashback.schemas import (
    Accrual,
    AccrualIn,
    AccrualResult,
    Balance,
    BalanceResponse,
    HistoryEntry,
    HistoryResponse,
    OrderCashback,
    Repayment,
    Reversal,
    ReversalIn,
    ReversalResult,
)
from qrpay.cashback.service import CashbackService
from qrpay.kernel.callers import allow
from qrpay.kernel.http import error_responses, view
from qrpay.kernel.money import format_amount
from qrpay.kernel.schemas import STORABLE_TEXT
from qrpay.kernel.service import provide

router = APIRouter(prefix="/v1", tags=["cashback"])

OrderIdPath = Annotated[str, Path(min_length=1, max_length=128)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=128)]
# The new routes' keys: text PostgreSQL cannot store (a NUL) is a 400, not a 500.
KeyPath = Annotated[str, Path(min_length=1, max_length=128, pattern=STORABLE_TEXT)]


Cashback = Annotated[CashbackService, Depends(provide(CashbackService))]


def accrual_view(accrual: domain.Accrual) -> Accrual:
    return view(Accrual, accrual)


@router.put(
    "/accruals/{order_id}",
    summary="Accrue an order's cashback, once: a repeat is a no-op, another amount is 409",
    responses=error_responses(401, 403, 409, 503),
    dependencies=[allow("payments-eda")],
)
async def accrue(order_id: OrderIdPath, body: AccrualIn, service: Cashback) -> AccrualResult:
    accrual, created = await service.accrue(order_id, body)
    return AccrualResult(accrual=accrual_view(accrual), created=created)


@router.put(
    "/cashback/accruals/{accrual_key}/reversals/{reversal_id}",
    summary=(
        "Reverse (part of) an accrual, once per reversal_id: what the balance lacks is the "
        "user's debt, repaid by their next accrual in that currency"
    ),
    description=(
        "404 `accrual_not_found`; 400 `currency_mismatch` (not the accrual's currency); 409 "
        "`reversal_exceeds_accrual` (the accrual's reversals would sum above it), "
        "`reversal_mismatch` (this reversal_id already reversed another amount or accrual). "
        "A repeat answers the same reversal with `created: false`."
    ),
    responses=error_responses(400, 401, 403, 404, 409, 503),
    dependencies=[allow("payments-eda")],
)
async def reverse(
    accrual_key: KeyPath, reversal_id: KeyPath, body: ReversalIn, service: Cashback
) -> ReversalResult:
    reversal, created = await service.reverse(accrual_key, reversal_id, body)
    return ReversalResult(reversal=view(Reversal, reversal), created=created)


# No service reads balances yet; the guest CLI shows one after a payment.
@router.get(
    "/users/{user_id}/balance",
    summary="A user's cashback balance and open debt per currency",
    responses=error_responses(401, 403),
    dependencies=[allow(tools=True)],
)
async def balance(user_id: UserIdPath, service: Cashback) -> BalanceResponse:
    accounts = (await service.ledger(user_id)).accounts()
    return BalanceResponse(
        user_id=user_id,
        balances=[
            Balance(
                currency=c,
                amount=format_amount(a.balance, c),
                debt=format_amount(a.debt, c),
            )
            for c, a in accounts.items()
        ],
    )


# The history, at its first path and at the one issue 19's contract names.
_HISTORY: dict[str, Any] = {
    "summary": "A user's accruals (newest first) and every entry of their history (oldest first)",
    "description": "Entries: accruals, reversals (`amount`, `taken`, `debt`) and debt repayments.",
    "responses": error_responses(401, 403),
    "dependencies": [allow(tools=True)],
}


@router.get("/users/{user_id}/accruals", **_HISTORY)
@router.get("/cashback/history/{user_id}", **_HISTORY)
async def history(user_id: UserIdPath, service: Cashback) -> HistoryResponse:
    ledger = await service.ledger(user_id)
    return HistoryResponse(
        user_id=user_id,
        accruals=[accrual_view(a) for a in reversed(ledger.accruals)],
        entries=[view(HistoryEntry, e) for e in ledger.entries()],
    )


# payments-eda reads what a payment accrued before taking a refund's share back (issue 19).
@router.get(
    "/cashback/orders/{order_id}",
    summary="An order's accruals, their reversals and the debt repayments they made (support)",
    description="Accrual keys `order_id` and `order_id.<invoice_id>`; each list oldest first.",
    responses=error_responses(401, 403),
    dependencies=[allow("payments-eda", "support", tools=True)],
)
async def order(order_id: KeyPath, service: Cashback) -> OrderCashback:
    ledger = await service.order(order_id)
    return OrderCashback(
        order_id=order_id,
        accruals=[accrual_view(a) for a in ledger.accruals],
        reversals=[view(Reversal, r) for r in ledger.reversals],
        repayments=[view(Repayment, p) for p in ledger.repayments],
    )
