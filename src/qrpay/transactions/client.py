"""The typed client other services use to call transactions."""

from __future__ import annotations

from qrpay.kernel.http_client import ServiceClient
from qrpay.transactions.schemas import (
    Invoice,
    InvoiceIn,
    Operation,
    OperationIn,
    VoidIn,
    VoidResult,
)


class TransactionsClient(ServiceClient):
    downstream = "transactions"

    async def ensure_invoice(self, invoice_id: str, invoice: InvoiceIn) -> Invoice:
        """Create the invoice or return the existing one (PUT: safe to repeat)."""
        body = await self.call(
            "PUT",
            f"/v1/invoices/{invoice_id}",
            endpoint="ensure_invoice",
            idempotent=True,
            json=invoice.model_dump(mode="json"),
        )
        return Invoice.model_validate(body)

    async def start_operation(self, invoice_id: str, operation: OperationIn) -> Operation:
        """Start hold/clear/unhold; idempotent on ``operation_id``. The result comes by callback."""
        body = await self.call(
            "POST",
            f"/v1/invoices/{invoice_id}/operations",
            endpoint=f"start_{operation.kind.value}",
            idempotent=True,
            json=operation.model_dump(mode="json", exclude_none=True),
        )
        return Operation.model_validate(body)

    async def get_invoice(self, invoice_id: str) -> Invoice:
        body = await self.call(
            "GET", f"/v1/invoices/{invoice_id}", endpoint="get_invoice", idempotent=True
        )
        return Invoice.model_validate(body)

    async def void_hold(
        self, invoice_id: str, hold_id: str, release_operation_id: str
    ) -> VoidResult:
        """Void the hold (idempotent: repeat until ``outcome.final``)."""
        body = await self.call(
            "POST",
            f"/v1/invoices/{invoice_id}/operations/{hold_id}/void",
            endpoint="void_hold",
            idempotent=True,
            json=VoidIn(release_operation_id=release_operation_id).model_dump(mode="json"),
        )
        return VoidResult.model_validate(body)
