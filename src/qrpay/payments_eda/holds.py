"""What transactions knows of a hold, as the sweep asks it."""

from __future__ import annotations

from datetime import datetime

from qrpay.kernel.errors import NotFound
from qrpay.payments_eda.domain import OWNER
from qrpay.payments_eda.schemas import TASK_QUEUE, Task
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.schemas import (
    CallbackTarget,
    InvoiceIn,
    OperationIn,
    OperationKind,
    OperationStatus,
    PaymentMethodRef,
)


def captured_hold(
    hold_id: str,
    amount: str,
    card: PaymentMethodRef,
    *,
    order_id: str,
    user_id: str,
    currency: str,
    not_after: datetime,
) -> OperationIn:
    """The one call that pays: the invoice with its first hold, captured (cleared by
    transactions in the same pass once it succeeds; the clear's callback completes the
    payment). Refused if it arrives after ``not_after``, when the sweep may have given the
    payment back."""
    return OperationIn(
        operation_id=hold_id,
        kind=OperationKind.HOLD,
        amount=amount,
        payment_method=card,
        capture=True,
        not_after=not_after,
        invoice=InvoiceIn(
            owner=OWNER,
            order_id=order_id,
            user_id=user_id,
            currency=currency,
            callback=CallbackTarget(queue=TASK_QUEUE, task=Task.TRANSACTION_CALLBACK.value),
        ),
    )


async def hold_under_way(transactions: TransactionsClient, invoice_id: str, hold_id: str) -> bool:
    """Whether the hold exists with an outcome still to come: pending at the gateway, or
    succeeded and not released (its callback decides then, not the sweep)."""
    try:
        invoice = await transactions.get_invoice(invoice_id)
    except NotFound:
        return False
    hold = next((op for op in invoice.operations if op.operation_id == hold_id), None)
    if hold is None or hold.status in (OperationStatus.FAILED, OperationStatus.CANCELED):
        return False
    if hold.status is OperationStatus.PENDING:
        return True
    return not any(
        op.target == hold_id
        and op.kind is OperationKind.UNHOLD
        and op.status is OperationStatus.SUCCEEDED
        for op in invoice.operations
    )
