"""The typed client other services use to call eda."""

from __future__ import annotations

from datetime import datetime

from qrpay.eda.schemas import (
    ChangesPage,
    CreateOrderRequest,
    CreateOrderResponse,
    FeedTail,
    LedgerView,
    OrdersPage,
    OrderStatus,
    OrderStatusView,
    OrderView,
    PaymentPhase,
    PaymentRef,
    QuoteView,
    ShareChoice,
    ShareRef,
    SharesToCheck,
    StartPaymentRequest,
    StartShareRequest,
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

    async def payments_to_check(
        self, updated_before: datetime, *, limit: int = 100
    ) -> list[OrderView]:
        """Payments under way that changed last before ``updated_before``, then every one
        being rolled back (whatever its age): what payments-eda's sweep looks at."""
        params: dict[str, str] = {
            "status": OrderStatus.PAYMENT_IN_PROGRESS.value,
            "limit": str(limit),
        }
        stale = await self.fetch(
            OrdersPage,
            "GET",
            "/v1/orders",
            endpoint="orders_in_status",
            params={**params, "updated_before": updated_before.isoformat()},
        )
        rolling = await self.fetch(
            OrdersPage,
            "GET",
            "/v1/orders",
            endpoint="orders_in_status",
            params={**params, "payment_phase": PaymentPhase.ROLLING_BACK.value},
        )
        seen = {order.order_id for order in stale.orders}
        return stale.orders + [o for o in rolling.orders if o.order_id not in seen]

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

    async def start_payment(self, order_id: str, request: StartPaymentRequest) -> OrderView:
        # Repeating a start with the same payment_id is a no-op in eda.
        return await self._payment(order_id, "start", request)

    async def fail_payment(self, order_id: str, payment_id: str) -> OrderView:
        return await self._payment(order_id, "fail", PaymentRef(payment_id=payment_id))

    async def claim_clear(self, order_id: str, payment_id: str) -> OrderView:
        return await self._payment(order_id, "claim-clear", PaymentRef(payment_id=payment_id))

    async def begin_rollback(self, order_id: str, payment_id: str) -> OrderView:
        return await self._payment(order_id, "begin-rollback", PaymentRef(payment_id=payment_id))

    async def complete_payment(self, order_id: str, payment_id: str) -> OrderView:
        return await self._payment(order_id, "complete", PaymentRef(payment_id=payment_id))

    async def close_order(self, order_id: str) -> OrderView:
        path = f"/v1/orders/{order_id}/close"
        return await self.fetch(OrderView, "POST", path, endpoint="close_order")

    async def _payment(
        self, order_id: str, move: str, request: StartPaymentRequest | PaymentRef
    ) -> OrderView:
        path = f"/v1/orders/{order_id}/payment/{move}"
        return await self.fetch(
            OrderView, "POST", path, endpoint=f"{move.replace('-', '_')}_payment", json=request
        )

    # --- a split bill: each share moves like a whole-bill payment, on its own ------------

    async def ledger(self, order_id: str) -> LedgerView:
        path = f"/v1/orders/{order_id}/shares"
        return await self.fetch(LedgerView, "GET", path, endpoint="ledger")

    async def shares_to_check(self, updated_before: datetime, limit: int = 100) -> SharesToCheck:
        params = {"updated_before": updated_before.isoformat(), "limit": str(limit)}
        path = "/v1/orders/shares/overdue"
        return await self.fetch(
            SharesToCheck, "GET", path, endpoint="shares_to_check", params=params
        )

    async def quote(self, order_id: str, choice: ShareChoice) -> QuoteView:
        params = [("way", choice.way.value), *(("items", str(i)) for i in choice.items)]
        if choice.parts is not None:
            params.append(("parts", str(choice.parts)))
        if choice.amount is not None:
            params.append(("amount", choice.amount))
        path = f"/v1/orders/{order_id}/shares/quote"
        return await self.fetch(QuoteView, "GET", path, endpoint="quote", params=params)

    async def start_share(self, order_id: str, request: StartShareRequest) -> LedgerView:
        # Repeating a start with the same share_id and choice is a no-op in eda.
        return await self._share(order_id, "start", request)

    async def move_share(self, order_id: str, move: str, share_id: str) -> LedgerView:
        """``move``: claim-clear, begin-rollback, fail or complete."""
        return await self._share(order_id, move, ShareRef(share_id=share_id))

    async def _share(
        self, order_id: str, move: str, request: StartShareRequest | ShareRef
    ) -> LedgerView:
        path = f"/v1/orders/{order_id}/shares/{move}"
        return await self.fetch(
            LedgerView, "POST", path, endpoint=f"{move.replace('-', '_')}_share", json=request
        )
