"""eda's HTTP routes: parse, call the service, serialize. Paths match ``eda.client``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from qrpay.eda.domain import Order
from qrpay.eda.payment_service import PaymentService
from qrpay.eda.schemas import (
    ChangesPage,
    CreateOrderRequest,
    CreateOrderResponse,
    FeedTail,
    LedgerView,
    OrderView,
    PaymentRef,
    PaymentState,
    PaymentsToCheck,
    QuoteView,
    RefundAnswer,
    RefundMoved,
    RefundProblems,
    RefundRequest,
    RefundState,
    ShareWay,
    StartedPayment,
    StartPaymentRequest,
    StatusesRequest,
    StatusesResponse,
    share_choice,
)
from qrpay.eda.service import OrderService
from qrpay.kernel.callers import allow
from qrpay.kernel.fast_routes import served_fast
from qrpay.kernel.http import error_responses, json_response, view
from qrpay.kernel.schemas import STORABLE_TEXT
from qrpay.kernel.service import provide

router = APIRouter(prefix="/v1/orders", tags=["orders"])


Orders = Annotated[OrderService, Depends(provide(OrderService))]
Payments = Annotated[PaymentService, Depends(provide(PaymentService))]
OrderIdPath = Annotated[str, Path(pattern=STORABLE_TEXT)]

# Who calls eda (kernel.callers): iiko-integration creates orders and reads statuses
# and the change feed for the POS; payments-eda reads orders, moves their payments and
# refunds them.
POS_SIDE = allow("iiko-integration")
PAYER_SIDE = allow("payments-eda")
# The change feed: iiko-integration follows it for the POS, payments-eda to wake the
# guests waiting on their payment (the long-poll).
FEED_READERS = allow("iiko-integration", "payments-eda")
# An order's payments: payments-eda shows them to the guest, iiko-integration to the POS.
BOTH_SIDES = allow("iiko-integration", "payments-eda")
# The support tools (`qrpay support order`) read an order and its ledger.
PAYER_SIDE_AND_SUPPORT = allow("payments-eda", "support")
BOTH_SIDES_AND_SUPPORT = allow("iiko-integration", "payments-eda", "support")


def order_view(order: Order) -> OrderView:
    return view(OrderView, order, order_id=order.id)


@router.post(
    "",
    summary="Create an order from a pre-check, or get the one already made for it",
    responses=error_responses(401, 403, 409),
    dependencies=[POS_SIDE],
)
async def create_order(body: CreateOrderRequest, service: Orders) -> CreateOrderResponse:
    order, outcome = await service.create(body.client_id, body.internal_order_id, body.bill)
    return CreateOrderResponse(order=order_view(order), outcome=outcome)


@router.post(
    "/statuses",
    summary="Statuses of up to 100 orders; unknown ids are left out",
    response_model=StatusesResponse,
    responses=error_responses(401, 403),
    dependencies=[POS_SIDE],
)
async def statuses(body: StatusesRequest, service: Orders) -> Response:
    # The hot path: rows go straight to JSON without a model per order.
    rows = await service.statuses(body.order_ids)
    return json_response(200, {"orders": rows})


@router.get(
    "/changes",
    summary="The change feed: orders' latest statuses after a cursor, in commit-safe order; "
    "waits up to wait_ms for a change when there is none yet",
    response_model=ChangesPage,
    responses=error_responses(400, 401, 403),
    dependencies=[FEED_READERS],
)
# Every follower's long-poll (one per iiko-integration and payments-eda worker) comes
# back on each change, so FastAPI's per-request layers were paid once per change and
# follower (kernel/fast_routes.py).
@served_fast
async def changes(
    service: Orders,
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    wait_ms: Annotated[int, Query(ge=0, le=60_000)] = 0,
    client_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:
    page = await service.changes(
        after, limit=limit, wait_seconds=wait_ms / 1000, client_id=client_id
    )
    return json_response(200, page)


@router.get(
    "/changes/tail",
    summary="The cursor after every change committed so far: where a new follower starts",
    response_model=FeedTail,
    responses=error_responses(401, 403),
    dependencies=[FEED_READERS],
)
async def changes_tail(service: Orders) -> FeedTail:
    return FeedTail(cursor=await service.tail())


@router.get(
    "/{order_id}",
    summary="One order",
    response_model=OrderView,
    responses=error_responses(401, 403, 404),
    dependencies=[PAYER_SIDE_AND_SUPPORT],
)
@served_fast
async def get_order(order_id: OrderIdPath, service: Orders) -> Response:
    # The payer side reads an order on every call: written straight to JSON.
    return json_response(200, await service.get_view(order_id))


@router.post(
    "/{order_id}/close",
    summary="The waiter closes the order; what is left is settled outside qrpay",
    responses=error_responses(404, 409),
    dependencies=[POS_SIDE],
)
async def close_order(order_id: OrderIdPath, service: Orders) -> OrderView:
    return order_view(await service.close(order_id))


# --- payments: each a share of the bill, the whole bill the share of everything left ----


@router.get(
    "/payments/overdue",
    summary="Payments whose hold has had no outcome for a while, and those being rolled "
    "back, oldest change first, a page at a time",
    response_model=PaymentsToCheck,
    responses=error_responses(400, 401, 403),
    dependencies=[PAYER_SIDE],
)
async def payments_to_check(
    service: Payments,
    updated_before: datetime,
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return json_response(200, await service.to_check(updated_before, limit, after))


@router.get(
    "/refunds/problems",
    summary="Refund parts refused for good, and those refunding since before"
    " refunding_before, newest change first (support's problem list)",
    response_model=RefundProblems,
    responses=error_responses(400, 401, 403),
    dependencies=[PAYER_SIDE_AND_SUPPORT],
)
async def refund_problems(
    service: Payments,
    refunding_before: datetime,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return json_response(200, await service.refund_problems(refunding_before, limit))


@router.get(
    "/{order_id}/payments",
    summary="The bill's payments: paid, being paid, and what is left",
    response_model=LedgerView,
    responses=error_responses(401, 403, 404),
    dependencies=[BOTH_SIDES_AND_SUPPORT],
)
@served_fast
async def ledger(order_id: OrderIdPath, service: Payments) -> Response:
    return json_response(200, await service.ledger(order_id))


@router.get(
    "/{order_id}/payments/quote",
    summary="What a share of the bill would cost now; reserves nothing",
    response_model=QuoteView,
    responses=error_responses(400, 401, 403, 404, 409),
    dependencies=[PAYER_SIDE],
)
@served_fast
async def quote(
    order_id: OrderIdPath,
    service: Payments,
    way: ShareWay,
    parts: Annotated[int | None, Query(ge=2, le=50)] = None,
    items: Annotated[list[int] | None, Query(max_length=500)] = None,
    amount: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    choice = share_choice(way, parts, items, amount)
    return json_response(200, await service.quote(order_id, choice))


@router.post(
    "/{order_id}/payments/start",
    summary="A payment begins at the price the guest saw; its amount and items are reserved. "
    "The same payment id again answers that payment as it stands",
    response_model=StartedPayment,
    responses=error_responses(400, 401, 403, 404, 409),
    dependencies=[PAYER_SIDE],
)
@served_fast
async def start_payment(
    order_id: OrderIdPath, body: StartPaymentRequest, service: Payments
) -> Response:
    return json_response(200, await service.start(order_id, body))


_PAYMENT_MOVES = {
    "begin-rollback": (PaymentState.ROLLING_BACK, "The payment's rollback claims it"),
    "fail": (PaymentState.RELEASED, "The payment's hold failed or was released"),
    "complete": (PaymentState.PAID, "The payment's clear succeeded"),
}


def _move_route(
    path: str, endpoint: Callable[..., Awaitable[Response]], summary: str, model: type, name: str
) -> None:
    """A payer-side POST that moves a payment or a refund part (idempotent)."""
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        summary=summary,
        response_model=model,
        responses=error_responses(401, 403, 404, 409),
        dependencies=[PAYER_SIDE],
        name=name,
    )


def _payment_move_route(path: str, to: PaymentState, summary: str) -> None:
    async def move(order_id: OrderIdPath, body: PaymentRef, service: Payments) -> Response:
        return json_response(200, await service.move(order_id, body.payment_id, to))

    name = f"payment_{path.replace('-', '_')}"
    # Each payment's hold ends in one of these moves (kernel/fast_routes.py).
    _move_route(f"/{{order_id}}/payments/{path}", served_fast(move), summary, LedgerView, name)


for _path, (_to, _summary) in _PAYMENT_MOVES.items():
    _payment_move_route(_path, _to, _summary)


# --- refunds of paid payments (issue 19) ------------------------------------------------

PartIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=STORABLE_TEXT)]


@router.post(
    "/{order_id}/refunds",
    summary="A refund of paid payments is admitted: one part per payment it gives money "
    "back of, each reserved until its outcome. The same refund id again answers its parts",
    response_model=RefundAnswer,
    responses=error_responses(400, 401, 403, 404, 409),
    dependencies=[PAYER_SIDE],
)
async def refund(order_id: OrderIdPath, body: RefundRequest, service: Payments) -> Response:
    return json_response(200, await service.refund(order_id, body))


_REFUND_MOVES = {
    "complete": (RefundState.REFUNDED, "The refund part's money was given back"),
    "fail": (RefundState.FAILED, "The refund part was refused for good; its money is free again"),
}


def _refund_move_route(path: str, to: RefundState, summary: str) -> None:
    async def move(order_id: OrderIdPath, part_id: PartIdPath, service: Payments) -> Response:
        return json_response(200, await service.move_refund(order_id, part_id, to))

    path_of = f"/{{order_id}}/refunds/{{part_id}}/{path}"
    _move_route(path_of, move, summary, RefundMoved, f"refund_{path}")


for _path, (_refund_to, _summary) in _REFUND_MOVES.items():
    _refund_move_route(_path, _refund_to, _summary)
