"""cashback's HTTP routes: parse, call the service, serialize. Paths match ``cashback.client``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

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
from qrpay.kernel.http import error_responses

router = APIRouter(prefix="/v1", tags=["cashback"])

OrderIdPath = Annotated[str, Path(min_length=1, max_length=128)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=128)]


def _service(request: Request) -> CashbackService:
    service: CashbackService = request.app.state.cashback
    return service


def accrual_view(accrual: Accrual) -> AccrualView:
    return AccrualView(
        order_id=accrual.order_id,
        user_id=accrual.user_id,
        amount=accrual.amount,
        currency=accrual.currency,
        source=accrual.source,
        created_at=accrual.created_at,
    )


@router.put(
    "/accruals/{order_id}",
    summary="Accrue an order's cashback, once: a repeat is a no-op, another amount is 409",
    responses=error_responses(409, 503),
)
async def accrue(order_id: OrderIdPath, body: AccrualIn, request: Request) -> AccrualResult:
    accrual, created = await _service(request).accrue(order_id, body)
    return AccrualResult(accrual=accrual_view(accrual), created=created)


@router.get("/users/{user_id}/balance", summary="A user's cashback balance per currency")
async def balance(user_id: UserIdPath, request: Request) -> BalanceResponse:
    totals = await _service(request).balance(user_id)
    return BalanceResponse(
        user_id=user_id,
        balances=[Balance(currency=c, amount=a) for c, a in totals.items()],
    )


@router.get("/users/{user_id}/accruals", summary="A user's accruals, newest first")
async def history(user_id: UserIdPath, request: Request) -> HistoryResponse:
    accruals = await _service(request).history(user_id)
    return HistoryResponse(user_id=user_id, accruals=[accrual_view(a) for a in accruals])
