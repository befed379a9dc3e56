"""The typed client other parts (the POS simulator, api-proxy) use to call iiko-integration."""

from __future__ import annotations

from qrpay.iiko_integration.schemas import (
    AvailabilityResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    ListOrdersRequest,
    ListOrdersResponse,
    OrderStatusItem,
    RestaurantItem,
    RestaurantsResponse,
)
from qrpay.kernel.http_client import ServiceClient

API_KEY_HEADER = "X-API-Key"


def _app_params(nearest_zone: str, uuid: str, phone_id: str) -> dict[str, str]:
    return {"nearest_zone": nearest_zone, "uuid": uuid, "phone_id": phone_id}


class IikoIntegrationClient(ServiceClient):
    downstream = "iiko-integration"

    async def create_order(
        self, api_key: str, request: CreateOrderRequest, *, deadline_ms: int | None = None
    ) -> CreateOrderResponse:
        # Idempotent on (client_id, internal_order_id), so a retry cannot make a second order.
        body = await self.call(
            "POST",
            "/orders",
            endpoint="create_order",
            idempotent=True,
            json=request.model_dump(mode="json"),
            headers={API_KEY_HEADER: api_key},
            deadline_ms=deadline_ms,
        )
        return CreateOrderResponse.model_validate(body)

    async def list_orders(
        self, api_key: str, client_id: str, order_ids: list[str]
    ) -> list[OrderStatusItem]:
        body = await self.call(
            "POST",
            "/orders/list",
            endpoint="list_orders",
            idempotent=True,
            json=ListOrdersRequest(client_id=client_id, orders=order_ids).model_dump(mode="json"),
            headers={API_KEY_HEADER: api_key},
        )
        return ListOrdersResponse.model_validate(body).orders

    async def availability(self, *, nearest_zone: str, uuid: str, phone_id: str) -> bool:
        body = await self.call(
            "GET",
            "/availability",
            endpoint="availability",
            idempotent=True,
            params=_app_params(nearest_zone, uuid, phone_id),
        )
        return AvailabilityResponse.model_validate(body).is_available

    async def restaurants(
        self, *, nearest_zone: str, uuid: str, phone_id: str
    ) -> list[RestaurantItem]:
        body = await self.call(
            "GET",
            "/restaurants",
            endpoint="restaurants",
            idempotent=True,
            params=_app_params(nearest_zone, uuid, phone_id),
        )
        return RestaurantsResponse.model_validate(body).restaurants
