"""transactions' HTTP routes: parse, call the service, serialize. Paths match ``client``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from qrpay.kernel.callers import allow
from qrpay.kernel.http import error_responses, view
from qrpay.kernel.money import format_amount
from qrpay.kernel.service import provide
from qrpay.kernel.tickets import Caller
from qrpay.transactions.domain import InvoiceRecord, OperationRecord, derived_amounts
from qrpay.transactions.schemas import (
    CallbackTarget,
    Invoice,
    InvoiceId,
    InvoiceIn,
    Operation,
    OperationId,
    OperationIn,
    OrderInvoices,
    VoidIn,
    VoidResult,
)
from qrpay.transactions.service import TransactionsService

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


Transactions = Annotated[TransactionsService, Depends(provide(TransactionsService))]
# Only payments-eda owns invoices today; each call is then checked against the invoice's
# own ``owner`` (the service also refuses an invoice created for someone else).
Owner = Annotated[Caller, allow("payments-eda")]


def operation_view(op: OperationRecord) -> Operation:
    return view(Operation, op, amount=op.amount_text)


def invoice_view(invoice: InvoiceRecord, ops: Sequence[OperationRecord]) -> Invoice:
    amounts = derived_amounts(ops)
    currency = invoice.currency
    return view(
        Invoice,
        invoice,
        callback=CallbackTarget(queue=invoice.callback_queue, task=invoice.callback_task),
        operations=[operation_view(op) for op in ops],
        held=format_amount(amounts.held, currency),
        cleared=format_amount(amounts.cleared, currency),
        released=format_amount(amounts.released, currency),
        refunded=format_amount(amounts.refunded, currency),
    )


InvoicePath = Path(description="The owner's id for the invoice")


@router.put(
    "/{invoice_id}",
    summary="Create the invoice, or get the same one made before",
    responses=error_responses(401, 403, 409),
)
async def ensure_invoice(
    body: InvoiceIn, service: Transactions, caller: Owner, invoice_id: InvoiceId = InvoicePath
) -> Invoice:
    invoice, ops = await service.ensure_invoice(invoice_id, body, caller)
    return invoice_view(invoice, ops)


@router.get(
    "/{invoice_id}",
    summary="The invoice, its operations and derived amounts",
    responses=error_responses(401, 403, 404),
)
async def get_invoice(
    service: Transactions, caller: Owner, invoice_id: InvoiceId = InvoicePath
) -> Invoice:
    invoice, ops = await service.get_invoice(invoice_id, caller)
    return invoice_view(invoice, ops)


@router.post(
    "/{invoice_id}/operations",
    summary="Start a hold, clear, unhold or refund (of a cleared hold); idempotent on"
    " operation_id; the outcome comes by callback",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def start_operation(
    body: OperationIn, service: Transactions, caller: Owner, invoice_id: InvoiceId = InvoicePath
) -> Operation:
    op, _created = await service.start_operation(invoice_id, body, caller)
    return operation_view(op)


@router.post(
    "/{invoice_id}/operations/{operation_id}/void",
    summary="Void a hold: cancel it if it never reached the gateway, release it if it succeeded;"
    " repeat until the outcome is final (voided, failed, released)",
    responses=error_responses(401, 403, 404, 409),
)
async def void_hold(
    body: VoidIn,
    service: Transactions,
    caller: Owner,
    operation_id: OperationId,
    invoice_id: InvoiceId = InvoicePath,
) -> VoidResult:
    return await service.void_hold(invoice_id, operation_id, body, caller)


# --- the support tools (issue 19): read-only --------------------------------------------


@router.get(
    "",
    summary="An order's invoices with their operations and derived amounts, oldest first"
    " (the support tools)",
    responses=error_responses(400, 401, 403),
    dependencies=[allow("support")],
)
async def invoices_of_order(
    service: Transactions,
    order_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> OrderInvoices:
    found = await service.invoices_of_order(order_id)
    return OrderInvoices(
        order_id=order_id, invoices=[invoice_view(invoice, ops) for invoice, ops in found]
    )
