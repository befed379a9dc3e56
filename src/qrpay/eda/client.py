"""The typed client other services use to call eda."""

from __future__ import annotations

from qrpay.eda.schemas import (
    CreateOrderRequest,
    CreateOrderResponse,
    OrderStatusView,
    OrderView,
    PaymentRef,
    StartPaymentRequest,
    StatusesRequest,
    StatusesResponse,
)
from qrpay.kernel.http_client import ServiceClient


class EdaClient(ServiceClient):
    downstream = "eda"

    async def create_order(
        self, request: CreateOrderRequest, *, deadline_ms: int | None = None
    ) -> CreateOrderResponse:
        # Create-or-get on (client_id, internal_order_id): safe to retry.
        body = await self.call(
            "POST",
            "/v1/orders",
            endpoint="create_order",
            idempotent=True,
            json=request.model_dump(mode="json"),
            deadline_ms=deadline_ms,
        )
        return CreateOrderResponse.model_validate(body)

    async def get_order(self, order_id: str) -> OrderView:
        body = await self.call(
            "GET", f"/v1/orders/{order_id}", endpoint="get_order", idempotent=True
        )
        return OrderView.model_validate(body)

    async def statuses(self, order_ids: list[str]) -> list[OrderStatusView]:
        body = await self.call(
            "POST",
            "/v1/orders/statuses",
            endpoint="statuses",
            idempotent=True,
            json=StatusesRequest(order_ids=order_ids).model_dump(mode="json"),
        )
        return StatusesResponse.model_validate(body).orders

    async def start_payment(self, order_id: str, request: StartPaymentRequest) -> OrderView:
        # Repeating a start with the same payment_id is a no-op in eda.
        body = await self.call(
            "POST",
            f"/v1/orders/{order_id}/payment/start",
            endpoint="start_payment",
            idempotent=True,
            json=request.model_dump(mode="json"),
        )
        return OrderView.model_validate(body)

    async def fail_payment(self, order_id: str, payment_id: str) -> OrderView:
        body = await self.call(
            "POST",
            f"/v1/orders/{order_id}/payment/fail",
            endpoint="fail_payment",
            idempotent=True,
            json=PaymentRef(payment_id=payment_id).model_dump(mode="json"),
        )
        return OrderView.model_validate(body)

    async def complete_payment(self, order_id: str, payment_id: str) -> OrderView:
        body = await self.call(
            "POST",
            f"/v1/orders/{order_id}/payment/complete",
            endpoint="complete_payment",
            idempotent=True,
            json=PaymentRef(payment_id=payment_id).model_dump(mode="json"),
        )
        return OrderView.model_validate(body)
