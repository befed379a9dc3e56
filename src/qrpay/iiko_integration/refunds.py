"""The POS refunds a guest (issue 19): checked against the restaurant here, decided by eda
and carried out by payments-eda (docs/refunds.md)."""

from __future__ import annotations

from qrpay.eda.client import EdaClient
from qrpay.iiko_integration.auth import authorize
from qrpay.iiko_integration.schemas import RefundOrderRequest
from qrpay.iiko_integration.split import order_of_restaurant
from qrpay.payments_eda.client import RefundsClient
from qrpay.payments_eda.schemas import RefundRequest, RefundSource, RefundView


async def refund_order(
    eda: EdaClient, payments: RefundsClient, allowed: frozenset[str], request: RefundOrderRequest
) -> RefundView:
    """Another restaurant's order looks like an unknown one, as for every POS route."""
    authorize(allowed, request.client_id)
    await order_of_restaurant(eda, request.order_id, request.client_id)
    return await payments.refund(
        RefundRequest(
            order_id=request.order_id,
            refund_id=request.refund_id,
            amount=request.amount,
            tip=request.tip,
            payment_id=request.payment_id,
            source=RefundSource.POS,
        )
    )
