"""The typed client other services use to call eda."""

from __future__ import annotations

from datetime import datetime

from qrpay.eda.schemas import (
    ChangesPage,
    CreateOrderRequest,
    CreateOrderResponse,
    FeedTail,
    LedgerView,
    OrderStatusView,
    OrderView,
    PaymentRef,
    PaymentsToCheck,
    QuoteView,
    RefundAnswer,
    RefundMoved,
    RefundProblems,
    RefundRequest,
    ShareChoice,
    StartedPayment,
    StartPaymentRequest,
    StatusesRequest,
    StatusesResponse,
)
from qrpay.kernel.http_client import ServiceClient


class EdaClient(ServiceClient):
    """Every call is safe to repeat: creates are create-or-get, payment moves idempotent."""

    downstream = "eda"

    async def create_order(
        self, request: CreateOrderRequest, *, deadline_ms: int | None = None
    ) -> CreateOrderResponse:
        # Create-or-get on (client_id, internal_order_id): safe to retry.
        return await self.fetch(
            CreateOrderResponse,
            "POST",
            "/v1/orders",
            endpoint="create_order",
            json=request,
            deadline_ms=deadline_ms,
        )

    async def get_order(self, order_id: str) -> OrderView:
        return await self.fetch(OrderView, "GET", f"/v1/orders/{order_id}", endpoint="get_order")

    async def statuses(self, order_ids: list[str]) -> list[OrderStatusView]:
        request = StatusesRequest(order_ids=order_ids)
        path = "/v1/orders/statuses"
        answer = await self.fetch(StatusesResponse, "POST", path, endpoint="statuses", json=request)
        return answer.orders

    async def changes(
        self, after: str, *, limit: int, wait_ms: int, client_id: str | None = None
    ) -> ChangesPage:
        """The change feed after the cursor ``after`` (``""``: from the first change), only
        one restaurant's with ``client_id``; eda holds the call up to ``wait_ms`` while
        there is nothing new."""
        params = {"after": after, "limit": str(limit), "wait_ms": str(wait_ms)}
        if client_id is not None:
            params["client_id"] = client_id
        return await self.fetch(
            ChangesPage,
            "GET",
            "/v1/orders/changes",
            endpoint="changes",
            params=params,
            deadline_ms=wait_ms + self._dependency().timeout_ms,
        )

    async def feed_tail(self) -> str:
        """The cursor after every change committed so far."""
        answer = await self.fetch(FeedTail, "GET", "/v1/orders/changes/tail", endpoint="tail")
        return answer.cursor

    async def close_order(self, order_id: str) -> OrderView:
        path = f"/v1/orders/{order_id}/close"
        return await self.fetch(OrderView, "POST", path, endpoint="close_order")

    # --- payments: each a share of the bill, the whole bill the share of everything left --

    async def ledger(self, order_id: str) -> LedgerView:
        path = f"/v1/orders/{order_id}/payments"
        return await self.fetch(LedgerView, "GET", path, endpoint="ledger")

    async def payments_to_check(
        self, updated_before: datetime, *, after: str | None = None, limit: int = 100
    ) -> PaymentsToCheck:
        """A page of the payments whose hold has had no outcome since ``updated_before``,
        and of those being rolled back (whatever their age): what payments-eda's sweep
        looks at. ``after``: the previous page's ``next``."""
        params = {"updated_before": updated_before.isoformat(), "limit": str(limit)}
        if after is not None:
            params["after"] = after
        path = "/v1/orders/payments/overdue"
        return await self.fetch(
            PaymentsToCheck, "GET", path, endpoint="payments_to_check", params=params
        )

    async def refund_problems(self, refunding_before: datetime, *, limit: int) -> RefundProblems:
        """Refund parts refused for good, and those refunding since before ``refunding_before``."""
        params = {"refunding_before": refunding_before.isoformat(), "limit": str(limit)}
        path = "/v1/orders/refunds/problems"
        return await self.fetch(
            RefundProblems, "GET", path, endpoint="refund_problems", params=params
        )

    async def quote(self, order_id: str, choice: ShareChoice) -> QuoteView:
        params = [("way", choice.way.value), *(("items", str(i)) for i in choice.items)]
        if choice.parts is not None:
            params.append(("parts", str(choice.parts)))
        if choice.amount is not None:
            params.append(("amount", choice.amount))
        path = f"/v1/orders/{order_id}/payments/quote"
        return await self.fetch(QuoteView, "GET", path, endpoint="quote", params=params)

    async def start_payment(
        self, order_id: str, request: StartPaymentRequest, *, deadline_ms: int | None = None
    ) -> StartedPayment:
        # Repeating a start with the same payment id is answered with that payment.
        path = f"/v1/orders/{order_id}/payments/start"
        return await self.fetch(
            StartedPayment,
            "POST",
            path,
            endpoint="start_payment",
            json=request,
            deadline_ms=deadline_ms,
        )

    async def move_payment(self, order_id: str, move: str, payment_id: str) -> LedgerView:
        """``move``: begin-rollback, fail or complete; each a no-op when already done."""
        path = f"/v1/orders/{order_id}/payments/{move}"
        return await self.fetch(
            LedgerView,
            "POST",
            path,
            endpoint=f"{move.replace('-', '_')}_payment",
            json=PaymentRef(payment_id=payment_id),
        )

    # --- refunds of paid payments (issue 19) ------------------------------------------

    async def refund(self, order_id: str, request: RefundRequest) -> RefundAnswer:
        """Admit a refund; the same refund id with the same request answers its parts."""
        path = f"/v1/orders/{order_id}/refunds"
        return await self.fetch(RefundAnswer, "POST", path, endpoint="refund", json=request)

    async def move_refund(self, order_id: str, move: str, part_id: str) -> RefundMoved:
        """``move``: complete or fail; a no-op when the part is there already."""
        path = f"/v1/orders/{order_id}/refunds/{part_id}/{move}"
        return await self.fetch(RefundMoved, "POST", path, endpoint=f"{move}_refund")
