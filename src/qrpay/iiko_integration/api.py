"""HTTP routes: parse, call the service, serialize. Errors are raised, never answered here."""

# No `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases.

from typing import Annotated, TypeVar, cast

import orjson
from fastapi import APIRouter, Depends, Query, Request, Security, WebSocket
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
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
from qrpay.kernel.fast_routes import FastRequest, FastRoute
from qrpay.kernel.http import error_responses, json_response
from qrpay.kernel.service import provide, service_of
from qrpay.payments_eda.schemas import RefundView

API_KEY_HEADER = "X-API-Key"
API_KEY_HEADER_LOWER = API_KEY_HEADER.lower().encode()
M = TypeVar("M", bound=BaseModel)
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
AppParam = Annotated[str | None, Query(max_length=MAX_APP_PARAM_LENGTH)]


router = APIRouter()
Iiko = Annotated[IikoService, Depends(provide(IikoService))]


# The scope key under which a fast route hands over the caller it authenticated.
_AUTHENTICATED = "qrpay.pos_caller"


# Async so the hot path does not hop to the thread pool; raising here comes before
# body validation, so a caller without a key learns nothing about the body rules.
async def pos_caller(
    request: Request, service: Iiko, api_key: Annotated[str | None, Security(_api_key)]
) -> frozenset[str]:
    # A request the fast route handed over was authenticated there already: a second
    # check would take a second token of the key's rate limit for one request.
    known = request.scope.get(_AUTHENTICATED)
    if known is not None:
        return cast(frozenset[str], known)
    return service.authenticate(api_key)


PosCaller = Annotated[frozenset[str], Depends(pos_caller)]


@router.post(
    "/orders",
    tags=["pos"],
    summary="Create an order from a pre-check and get the lines to print",
    response_model=CreateOrderResponse,
    responses=error_responses(400, 401, 403, 409, 413, 503),
)
async def create_order(
    allowed: PosCaller, body: CreateOrderRequest, service: Iiko
) -> CreateOrderResponse:
    return await service.create_order(allowed, body)


@router.post(
    "/orders/list",
    tags=["pos"],
    summary="Statuses of orders, one per requested id in request order",
    response_model=ListOrdersResponse,
    responses=error_responses(400, 401, 403, 413, 503),
)
async def list_orders(allowed: PosCaller, body: ListOrdersRequest, service: Iiko) -> Response:
    return json_response(200, await _statuses(service, allowed, body))


async def _statuses(
    service: IikoService, allowed: frozenset[str], body: ListOrdersRequest
) -> dict[str, object]:
    statuses = await service.list_orders(allowed, body)
    # The hot path: serialized directly, skipping a second pass through the response model.
    return {"orders": [{"id": order_id, "status": status} for order_id, status in statuses]}


# The two POS routes as fast routes (kernel/fast_routes.py): the routes above declare
# them for the OpenAPI document and answer every request these turn away (None).


async def _fast_caller(
    request: FastRequest, model: type[M]
) -> tuple[IikoService, frozenset[str], M] | None:
    """The service, the caller's restaurants and the body, or None on any refusal."""
    value = request.json()  # before the key, as FastAPI parses the body first
    service = request.service(IikoService)
    # A refused key (401, 429) is FastAPI's answer too: its dependency raises before the
    # body's validation errors are reported.
    allowed = service.authenticate(request.header(API_KEY_HEADER_LOWER))
    try:
        return service, allowed, model.model_validate(value)
    except ValidationError:
        request.scope[_AUTHENTICATED] = allowed
        return None


async def _fast_create_order(request: FastRequest) -> bytes | None:
    accepted = await _fast_caller(request, CreateOrderRequest)
    if accepted is None:
        return None
    created = await accepted[0].create_order(accepted[1], accepted[2])
    return created.__pydantic_serializer__.to_json(created)


async def _fast_list_orders(request: FastRequest) -> bytes | None:
    accepted = await _fast_caller(request, ListOrdersRequest)
    if accepted is None:
        return None
    return orjson.dumps(await _statuses(*accepted))


FAST_ROUTES = (
    FastRoute("POST", "/orders", _fast_create_order),
    FastRoute("POST", "/orders/list", _fast_list_orders),
)


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


@router.get(
    "/availability",
    tags=["app"],
    summary="Whether pay-by-QR is on for this user",
    response_model=AvailabilityResponse,
    responses=error_responses(400),
)
async def availability(
    service: Iiko, nearest_zone: AppParam = None, uuid: AppParam = None, phone_id: AppParam = None
) -> AvailabilityResponse:
    return AvailabilityResponse(
        is_available=service.is_available(nearest_zone=nearest_zone, uuid=uuid, phone_id=phone_id)
    )


@router.get(
    "/restaurants",
    tags=["app"],
    summary="Restaurants of the user's zone where pay-by-QR is on for them",
    response_model=RestaurantsResponse,
    responses=error_responses(400),
)
async def restaurants(
    service: Iiko, nearest_zone: AppParam = None, uuid: AppParam = None, phone_id: AppParam = None
) -> RestaurantsResponse:
    return RestaurantsResponse(
        restaurants=service.restaurants(nearest_zone=nearest_zone, uuid=uuid, phone_id=phone_id)
    )
