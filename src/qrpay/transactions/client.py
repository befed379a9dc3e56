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
        path = f"/v1/invoices/{invoice_id}"
        return await self.fetch(Invoice, "PUT", path, endpoint="ensure_invoice", json=invoice)

    async def start_operation(self, invoice_id: str, operation: OperationIn) -> Operation:
        """Start hold/clear/unhold/refund; idempotent on ``operation_id``. The result comes by callback."""
        path = f"/v1/invoices/{invoice_id}/operations"
        body = operation.model_dump(mode="json", exclude_defaults=True)
        endpoint = f"start_{operation.kind.value}"
        return await self.fetch(Operation, "POST", path, endpoint=endpoint, json=body)

    async def get_invoice(self, invoice_id: str) -> Invoice:
        path = f"/v1/invoices/{invoice_id}"
        return await self.fetch(Invoice, "GET", path, endpoint="get_invoice")

    async def void_hold(
        self, invoice_id: str, hold_id: str, release_operation_id: str
    ) -> VoidResult:
        """Void the hold (idempotent: repeat until ``outcome.final``)."""
        body = VoidIn(release_operation_id=release_operation_id)
        path = f"/v1/invoices/{invoice_id}/operations/{hold_id}/void"
        return await self.fetch(VoidResult, "POST", path, endpoint="void_hold", json=body)
