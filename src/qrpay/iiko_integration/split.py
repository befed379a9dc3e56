"""The POS side of a split bill (issue 12): each guest's payment as the POS records it, and
the waiter closing an order that guests paid only part of.

Kept apart from ``/orders/list``: that route is the POS's hot path and answers from memory;
these read eda's ledger, which only a POS that shows split payments asks for.
"""

from __future__ import annotations

from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import LedgerView, PaymentState
from qrpay.iiko_integration.auth import authorize
from qrpay.iiko_integration.domain import pos_status
from qrpay.iiko_integration.schemas import (
    CloseOrderRequest,
    CloseOrderResponse,
    IikoCode,
    OrderPayments,
    OrderPaymentsRequest,
    PosPayment,
    PosRefund,
    PosStatus,
)
from qrpay.kernel.errors import NotFound


def _not_found(order_id: str) -> NotFound:
    return NotFound(f"order {order_id[:64]!r} not found", code=IikoCode.ORDER_NOT_FOUND)


async def order_of_restaurant(eda: EdaClient, order_id: str, client_id: str) -> LedgerView:
    """The order's ledger if it is this restaurant's; another restaurant's order is as
    unknown as a missing one (404)."""
    try:
        # The ledger names the order's restaurant (and is a read iiko-integration may make).
        ledger = await eda.ledger(order_id)
    except NotFound:
        raise _not_found(order_id) from None
    if ledger.client_id != client_id:
        raise _not_found(order_id)
    return ledger


async def close_order(
    eda: EdaClient, allowed: frozenset[str], request: CloseOrderRequest
) -> CloseOrderResponse:
    """Close the order for the waiter; another restaurant's order looks like an unknown one."""
    authorize(allowed, request.client_id)
    ledger = await order_of_restaurant(eda, request.order_id, request.client_id)
    closed = await eda.close_order(ledger.order_id)  # 409s (paid, paying) pass through
    return CloseOrderResponse(id=closed.order_id, status=pos_status(closed, request.client_id))


def _payments(ledger: LedgerView, client_id: str, *, refund_aware: bool) -> OrderPayments:
    paid = [p for p in ledger.payments if p.state is PaymentState.PAID]
    status = pos_status(ledger, client_id)
    if refund_aware and ledger.refunded_fully and status is PosStatus.PAYED:
        status = PosStatus.REFUNDED
    return OrderPayments(
        id=ledger.order_id,
        status=status,
        currency=ledger.currency,
        total=ledger.total,
        paid=ledger.paid,
        tips=ledger.tips,
        left=ledger.left,
        payments=[
            PosPayment(
                id=p.payment_id,
                amount=p.amount,
                tip=p.tip,
                items=p.items,
                paid_at=p.updated_at,
                refunded=p.refunded,
                refunded_tip=p.refunded_tip,
            )
            for p in sorted(paid, key=lambda p: (p.paid_seq or 0, p.payment_id))
        ],
        refunded=ledger.refunded,
        refunded_tips=ledger.refunded_tips,
        refunds=[
            PosRefund(
                refund_id=r.refund_id,
                part_id=r.part_id,
                payment_id=r.payment_id,
                amount=r.amount,
                tip=r.tip,
                state=r.state.value,
                at=r.updated_at,
            )
            for r in ledger.refunds
        ],
    )


async def order_payments(
    eda: EdaClient, allowed: frozenset[str], request: OrderPaymentsRequest
) -> list[OrderPayments]:
    """Each requested order's payments, in request order; unknown ids are NOT_FOUND."""
    authorize(allowed, request.client_id)
    answers: dict[str, OrderPayments] = {}
    for order_id in dict.fromkeys(request.orders):
        try:
            ledger = await eda.ledger(order_id)
        except NotFound:
            ledger = None
        if ledger is None or ledger.client_id != request.client_id:
            answers[order_id] = OrderPayments(id=order_id, status=PosStatus.NOT_FOUND)
        else:
            answers[order_id] = _payments(
                ledger, request.client_id, refund_aware=request.refund_aware
            )
    return [answers[order_id] for order_id in request.orders]
