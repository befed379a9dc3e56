"""cashback's HTTP routes: parse, call the service, serialize. Paths match ``cashback.client``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from qrpay.cashback.domain import Accrual
from qrpay.cashback.schemas import (
    Accrual as AccrualView,
)
from qrpay.cashback.schemas import (
    AccrualIn,
    AccrualResult,
    Balance,
    BalanceResponse,
    HistoryResponse,
)
from qrpay.cashback.service import CashbackService
from qrpay.kernel.callers import allow
from qrpay.kernel.http import error_responses, view
from qrpay.kernel.service import provide

router = APIRouter(prefix="/v1", tags=["cashback"])

OrderIdPath = Annotated[str, Path(min_length=1, max_length=128)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=128)]


Cashback = Annotated[CashbackService, Depends(provide(CashbackService))]


def accrual_view(accrual: Accrual) -> AccrualView:
    return view(AccrualView, accrual)


@router.put(
    "/accruals/{order_id}",
    summary="Accrue an order's cashback, once: a repeat is a no-op, another amount is 409",
    responses=error_responses(401, 403, 409, 503),
    dependencies=[allow("payments-eda")],
)
async def accrue(order_id: OrderIdPath, body: AccrualIn, service: Cashback) -> AccrualResult:
    accrual, created = await service.accrue(order_id, body)
    return AccrualResult(accrual=accrual_view(accrual), created=created)


# No service reads balances yet; the guest CLI shows one after a payment.
@router.get(
    "/users/{user_id}/balance",
    summary="A user's cashback balance per currency",
    responses=error_responses(401, 403),
    dependencies=[allow(tools=True)],
)
async def balance(user_id: UserIdPath, service: Cashback) -> BalanceResponse:
    totals = await service.balance(user_id)
    return BalanceResponse(
        user_id=user_id,
        balances=[Balance(currency=c, amount=a) for c, a in totals.items()],
    )


@router.get(
    "/users/{user_id}/accruals",
    summary="A user's accruals, newest first",
    responses=error_responses(401, 403),
    dependencies=[allow(tools=True)],
)
async def history(user_id: UserIdPath, service: Cashback) -> HistoryResponse:
    accruals = await service.history(user_id)
    return HistoryResponse(user_id=user_id, accruals=[accrual_view(a) for a in accruals])
