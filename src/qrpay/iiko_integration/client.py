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
        return await self.fetch(
            CreateOrderResponse,
            "POST",
            "/orders",
            endpoint="create_order",
            json=request,
            headers={API_KEY_HEADER: api_key},
            deadline_ms=deadline_ms,
        )

    async def list_orders(
        self, api_key: str, client_id: str, order_ids: list[str]
    ) -> list[OrderStatusItem]:
        request = ListOrdersRequest(client_id=client_id, orders=order_ids)
        headers = {API_KEY_HEADER: api_key}
        answer = await self.fetch(
            ListOrdersResponse,
            "POST",
            "/orders/list",
            endpoint="list_orders",
            json=request,
            headers=headers,
        )
        return answer.orders

    async def availability(self, *, nearest_zone: str, uuid: str, phone_id: str) -> bool:
        params = _app_params(nearest_zone, uuid, phone_id)
        answer = await self.fetch(
            AvailabilityResponse, "GET", "/availability", endpoint="availability", params=params
        )
        return answer.is_available

    async def restaurants(
        self, *, nearest_zone: str, uuid: str, phone_id: str
    ) -> list[RestaurantItem]:
        params = _app_params(nearest_zone, uuid, phone_id)
        answer = await self.fetch(
            RestaurantsResponse, "GET", "/restaurants", endpoint="restaurants", params=params
        )
        return answer.restaurants
