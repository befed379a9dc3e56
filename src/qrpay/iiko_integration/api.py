"""HTTP routes: parse, call the service, serialize. Errors are raised, never answered here."""

# No `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases.

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security, WebSocket
from fastapi.security import APIKeyHeader
from starlette.responses import Response

from qrpay.eda.schemas import ClientId
from qrpay.iiko_integration.domain import MAX_APP_PARAM_LENGTH
from qrpay.iiko_integration.schemas import (
    AvailabilityResponse,
    CloseOrderRequest,
    CloseOrderResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    ListOrdersRequest,
    ListOrdersResponse,
    OrderPaymentsRequest,
    OrderPaymentsResponse,
    PosChangesResponse,
    RefundOrderRequest,
    RestaurantsResponse,
)
from qrpay.iiko_integration.service import IikoService
from qrpay.iiko_integration.stream import serve_stream
from qrpay.kernel.fast_routes import served_fast
from qrpay.kernel.http import error_responses, json_response, model_response
from qrpay.kernel.service import provide, service_of
from qrpay.payments_eda.schemas import RefundView

API_KEY_HEADER = "X-API-Key"
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
AppParam = Annotated[str | None, Query(max_length=MAX_APP_PARAM_LENGTH)]


router = APIRouter()
Iiko = Annotated[IikoService, Depends(provide(IikoService))]


# Async so the hot path does not hop to the thread pool; raising here comes before
# body validation, so a caller without a key learns nothing about the body rules.
async def pos_caller(
    service: Iiko, api_key: Annotated[str | None, Security(_api_key)]
) -> frozenset[str]:
    return service.authenticate(api_key)


PosCaller = Annotated[frozenset[str], Depends(pos_caller)]


@router.post(
    "/orders",
    tags=["pos"],
    summary="Create an order from a pre-check and get the lines to print",
    response_model=CreateOrderResponse,
    responses=error_responses(400, 401, 403, 409, 413, 503),
)
@served_fast
async def create_order(allowed: PosCaller, body: CreateOrderRequest, service: Iiko) -> Response:
    return model_response(await service.create_order(allowed, body))


@router.post(
    "/orders/list",
    tags=["pos"],
    summary="Statuses of orders, one per requested id in request order",
    response_model=ListOrdersResponse,
    responses=error_responses(400, 401, 403, 413, 503),
)
@served_fast
async def list_orders(allowed: PosCaller, body: ListOrdersRequest, service: Iiko) -> Response:
    statuses = await service.list_orders(allowed, body)
    # The hot path: serialized directly, skipping a second pass through the response model.
    orders = [{"id": order_id, "status": status} for order_id, status in statuses]
    return json_response(200, {"orders": orders})


@router.post(
    "/orders/close",
    tags=["pos"],
    summary="The waiter closes an order guests paid part of; the rest is paid outside qrpay",
    response_model=CloseOrderResponse,
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def close_order(
    allowed: PosCaller, body: CloseOrderRequest, service: Iiko
) -> CloseOrderResponse:
    return await service.close_order(allowed, body)


@router.post(
    "/orders/refund",
    tags=["pos"],
    summary="Refund a guest of a paid order, fully or partly, one payment or spread over the"
    " order's payments; idempotent on refund_id; the cashback is taken back in proportion",
    response_model=RefundView,
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def refund_order(allowed: PosCaller, body: RefundOrderRequest, service: Iiko) -> RefundView:
    return await service.refund_order(allowed, body)


@router.post(
    "/orders/payments",
    tags=["pos"],
    summary="A split bill's payments: paid amount, tips and each guest's payment, per order",
    response_model=OrderPaymentsResponse,
    responses=error_responses(400, 401, 403, 413, 503),
)
async def order_payments(
    allowed: PosCaller, body: OrderPaymentsRequest, service: Iiko
) -> OrderPaymentsResponse:
    return OrderPaymentsResponse(orders=await service.order_payments(allowed, body))


@router.get(
    "/orders/changes",
    tags=["pos"],
    summary="Push by long-poll: the restaurant's orders whose status changed after the cursor, "
    "waiting up to wait_ms for one; resume with the answer's cursor",
    response_model=PosChangesResponse,
    responses=error_responses(400, 401, 403, 503),
)
async def order_changes(
    allowed: PosCaller,
    service: Iiko,
    client_id: Annotated[ClientId, Query()],
    after: Annotated[str | None, Query(max_length=200)] = None,
    wait_ms: Annotated[int, Query(ge=0, le=30_000)] = 25_000,
) -> Response:
    statuses, cursor = await service.pos_changes(allowed, client_id, after, wait_ms)
    orders = [{"id": order_id, "status": status} for order_id, status in statuses]
    return json_response(200, {"orders": orders, "cursor": cursor})


@router.websocket("/orders/stream")
async def order_stream(websocket: WebSocket) -> None:
    # Push by WebSocket (not in OpenAPI; docs/pos-api.md and ``stream`` describe it).
    await serve_stream(websocket, service_of(websocket.app, IikoService))


@dataclass(frozen=True)
class AppUser:
    """Who asks, as the app tells it (each of the query parameters optional)."""

    nearest_zone: AppParam = None
    uuid: AppParam = None
    phone_id: AppParam = None


User = Annotated[AppUser, Depends()]


@router.get(
    "/availability",
    tags=["app"],
    summary="Whether pay-by-QR is on for this user",
    response_model=AvailabilityResponse,
    responses=error_responses(400),
)
async def availability(service: Iiko, user: User) -> AvailabilityResponse:
    return AvailabilityResponse(is_available=service.is_available(**asdict(user)))


@router.get(
    "/restaurants",
    tags=["app"],
    summary="Restaurants of the user's zone where pay-by-QR is on for them",
    response_model=RestaurantsResponse,
    responses=error_responses(400),
)
async def restaurants(service: Iiko, user: User) -> RestaurantsResponse:
    return RestaurantsResponse(restaurants=service.restaurants(**asdict(user)))
