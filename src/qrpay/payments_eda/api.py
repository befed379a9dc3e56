"""HTTP routes of the payer API: parse, call the service, serialize. Errors are raised."""

# No `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from qrpay.eda.schemas import QuoteView, ShareWay, share_choice
from qrpay.kernel.callers import allow
from qrpay.kernel.fast_routes import served_fast
from qrpay.kernel.http import error_responses, model_response
from qrpay.kernel.money import format_plain
from qrpay.kernel.service import provide
from qrpay.payments_eda import domain
from qrpay.payments_eda.schemas import (
    IDEMPOTENCY_TOKEN_HEADER,
    PAYER_API_PREFIX,
    STATUS_WAIT_MS_MAX,
    IdempotencyToken,
    PaymentStatusResponse,
    PayRequest,
    PreorderResponse,
    RefundRequest,
    RefundView,
    Service,
    SharePayRequest,
    ShareStatusResponse,
    SplitView,
)
from qrpay.payments_eda.service import PaymentsService

PREFIX = PAYER_API_PREFIX

OrderIdParam = Annotated[str, Query(min_length=1, max_length=64)]
# Any text, or none: a missing or wrong signature is a 404 like an unknown order.
HmacParam = Annotated[str | None, Query()]
UidHeader = Annotated[str | None, Header(alias="X-Yandex-UID", max_length=128)]
PhoneIdHeader = Annotated[str | None, Header(alias="X-YaTaxi-PhoneId", max_length=128)]
LanguageHeader = Annotated[str | None, Header(alias="X-Request-Language", max_length=35)]
# A long-poll: answer once the status changes, or after this long with the current one.
WaitParam = Annotated[int, Query(ge=0, le=STATUS_WAIT_MS_MAX)]
# One per guest tap on "pay": a repeat with it is the same payment (required for a share).
TokenHeader = Annotated[IdempotencyToken | None, Header(alias=IDEMPOTENCY_TOKEN_HEADER)]


# The user headers are taken from api-proxy only, which sets them from the guest's session
# (kernel.callers); the guest CLI and the benchmarks call as the tools in development.
router = APIRouter(prefix=PREFIX, tags=["payer"], dependencies=[allow("api-proxy", tools=True)])
Payments = Annotated[PaymentsService, Depends(provide(PaymentsService))]


def _polled(answer: BaseModel, payments: PaymentsService) -> Response:
    """A status answer, with the seconds a client that polls waits before asking again."""
    return model_response(
        answer, headers={"X-Polling-Delay": format_plain(payments.polling_delay())}
    )


@router.get(
    "/preorder",
    summary="The bill, the guest's payment methods and the cashback they will earn",
    response_model=PreorderResponse,
    responses=error_responses(400, 404, 503),
)
@served_fast
async def preorder(
    service_: Annotated[Service, Query(alias="service")],
    order_id: OrderIdParam,
    payments: Payments,
    hmac: HmacParam = None,
    x_yandex_uid: UidHeader = None,
    x_yataxi_phoneid: PhoneIdHeader = None,
    x_request_language: LanguageHeader = None,
) -> Response:
    return model_response(
        await payments.preorder(order_id, hmac, x_yandex_uid, domain.language(x_request_language))
    )


@router.post(
    "/orders",
    summary="Pay the order: start a hold on the chosen card",
    response_model=PaymentStatusResponse,
    responses=error_responses(400, 401, 404, 409, 503),
)
@served_fast
async def pay(
    body: PayRequest,
    payments: Payments,
    x_yandex_uid: UidHeader = None,
    x_yataxi_phoneid: PhoneIdHeader = None,
    x_request_language: LanguageHeader = None,
    x_idempotency_token: TokenHeader = None,
) -> Response:
    return model_response(
        await payments.pay(
            body, x_idempotency_token, x_yandex_uid, domain.language(x_request_language)
        )
    )


@router.get(
    "/orders",
    summary="The payment's status; with wait_ms, once it changes (at most wait_ms later);"
    " a client that polls asks again after X-Polling-Delay seconds",
    response_model=PaymentStatusResponse,
    responses={
        **error_responses(400, 404, 503),
        200: {
            "description": "The payment's status",
            "headers": {
                "X-Polling-Delay": {
                    "description": "Seconds to wait before the next poll",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)
@served_fast
async def payment_status(
    order_id: OrderIdParam,
    payments: Payments,
    hmac: HmacParam = None,
    x_yandex_uid: UidHeader = None,
    x_yataxi_phoneid: PhoneIdHeader = None,
    x_request_language: LanguageHeader = None,
    wait_ms: WaitParam = 0,
) -> Response:
    answer = await payments.payment_status(
        order_id, hmac, domain.language(x_request_language), wait_ms
    )
    return _polled(answer, payments)


# --- a split bill (issue 12): each guest pays a share ---------------------------------


@router.get(
    "/orders/split",
    summary="The bill's shares: what is paid, being paid and left, and the tip choices",
    response_model=SplitView,
    responses=error_responses(400, 404, 503),
)
@served_fast
async def split(
    order_id: OrderIdParam,
    payments: Payments,
    hmac: HmacParam = None,
    x_request_language: LanguageHeader = None,
) -> Response:
    return model_response(await payments.split(order_id, hmac, domain.language(x_request_language)))


@router.get(
    "/orders/share/quote",
    summary="What a share would cost now; pay it with POST /orders/share at that amount",
    response_model=QuoteView,
    responses=error_responses(400, 404, 409, 503),
)
@served_fast
async def quote(
    order_id: OrderIdParam,
    way: ShareWay,
    payments: Payments,
    hmac: HmacParam = None,
    parts: Annotated[int | None, Query(ge=2, le=50)] = None,
    items: Annotated[list[int] | None, Query(max_length=500)] = None,
    amount: Annotated[str | None, Query(max_length=32)] = None,
    x_request_language: LanguageHeader = None,
) -> Response:
    choice = share_choice(way, parts, items, amount)
    return model_response(
        await payments.quote(order_id, hmac, choice, domain.language(x_request_language))
    )


@router.post(
    "/orders/share",
    summary="Pay a share of the bill (the rest, an equal part, items or an amount) and a tip",
    response_model=ShareStatusResponse,
    responses=error_responses(400, 401, 404, 409, 503),
)
@served_fast
async def pay_share(
    body: SharePayRequest,
    payments: Payments,
    x_yandex_uid: UidHeader = None,
    x_request_language: LanguageHeader = None,
    x_idempotency_token: TokenHeader = None,
) -> Response:
    return model_response(
        await payments.pay_share(
            body, x_idempotency_token, x_yandex_uid, domain.language(x_request_language)
        )
    )


@router.get(
    "/orders/share",
    summary="The status of one share; with wait_ms, once it changes (at most wait_ms later)",
    response_model=ShareStatusResponse,
    responses=error_responses(400, 404, 503),
)
@served_fast
async def share_status(
    order_id: OrderIdParam,
    share_id: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    payments: Payments,
    hmac: HmacParam = None,
    x_request_language: LanguageHeader = None,
    wait_ms: WaitParam = 0,
) -> Response:
    answer = await payments.share_status(
        order_id, hmac, share_id, domain.language(x_request_language), wait_ms
    )
    return _polled(answer, payments)


# GET and POST /orders (and /orders/share) are two routes each; Starlette would answer
# another method with the Allow header of the first one only. These routes name both.
async def get_and_post_only() -> Response:
    raise StarletteHTTPException(405, "Method Not Allowed", headers={"Allow": "GET, POST"})


for _path in ("/orders", "/orders/share"):
    router.add_api_route(
        _path,
        get_and_post_only,
        methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
        include_in_schema=False,
    )


# Refunds (issue 19): the POS's through iiko-integration, and support's.
refunds_router = APIRouter(
    prefix="/v1/refunds",
    tags=["refunds"],
    dependencies=[allow("iiko-integration", "support", tools=True)],
)


@refunds_router.post(
    "",
    summary="Refund a payment, or spread a refund over the order's payments; idempotent on"
    " refund_id (another body under it is 409)",
    response_model=RefundView,
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def refund(body: RefundRequest, payments: Payments) -> RefundView:
    return await payments.refunds.refund(body)


@refunds_router.get(
    "/{order_id}/{refund_id}",
    summary="Where a refund stands, part by part",
    response_model=RefundView,
    responses=error_responses(401, 403, 404, 503),
)
async def refund_status(
    order_id: Annotated[str, Path(min_length=1, max_length=64)],
    refund_id: Annotated[str, Path(min_length=1, max_length=64)],
    payments: Payments,
) -> RefundView:
    return await payments.refunds.view(order_id, refund_id)
