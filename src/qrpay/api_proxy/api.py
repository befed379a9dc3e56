"""HTTP routes: parse, call the service, serialize. Errors are raised, never answered here."""

# No `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases.

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qrpay.api_proxy.domain import (
    SESSION_COOKIE,
    Session,
    choose_language,
    safe_next,
)
from qrpay.api_proxy.pages import SECURITY_HEADERS, login_page, shell
from qrpay.api_proxy.schemas import SessionView
from qrpay.api_proxy.service import LANGUAGE_HEADER, ApiProxyService
from qrpay.iiko_integration.schemas import AvailabilityResponse, RestaurantsResponse
from qrpay.kernel.errors import Forbidden, InvalidInput
from qrpay.kernel.http import error_responses
from qrpay.kernel.service import provide
from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER

MAX_FORM_BYTES = 4096
Zone = Annotated[str, Query(max_length=64)]


def request_language(request: Request) -> str | None:
    return choose_language(
        request.headers.get(LANGUAGE_HEADER), request.headers.get("accept-language")
    )


def check_same_origin(request: Request) -> None:
    """A browser's cross-site POST is refused (SameSite=Lax is the first line, this the second)."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET-like request
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Forbidden("cross-site requests are not accepted", code="cross_site_request")


async def read_form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidInput(
            "send the form as application/x-www-form-urlencoded", code="invalid_form"
        )
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise InvalidInput("the form is too long", code="invalid_form")
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is not valid", code="invalid_form") from None
    return {key: values[0] for key, values in parsed.items()}


def cookie_options(request: Request) -> dict[str, Any]:
    """The session cookie's attributes, the same when it is set and when it is deleted."""
    return {
        "path": "/",
        "httponly": True,
        "samesite": "lax",
        "secure": request.url.scheme == "https",
    }


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


Proxy = Annotated[ApiProxyService, Depends(provide(ApiProxyService))]


async def limit_client(request: Request, service: Proxy) -> None:
    # request.client is the forwarded address only when a trusted proxy sent it (kernel.edge).
    service.limit_client(request.client.host if request.client else None)


router = APIRouter(dependencies=[Depends(limit_client)])


async def current_session(request: Request, service: Proxy) -> Session | None:
    return service.session(request.cookies.get(SESSION_COOKIE))


CurrentSession = Annotated[Session | None, Depends(current_session)]

# --- sign-in ------------------------------------------------------------------------------


@router.get("/login", include_in_schema=False)
async def login_form(
    request: Request, session: CurrentSession, service: Proxy, next: str | None = None
) -> HTMLResponse:
    return html(
        login_page(
            language=request_language(request),
            users=service.demo_users(),
            next_url=safe_next(next),
            current_user=session.user_id if session else None,
        )
    )


@router.post(
    "/login",
    tags=["session"],
    summary="Development sign-in as a demo user (form: user_id, next); 404 where it is off",
    status_code=303,
    responses=error_responses(400, 403, 404, 503),
)
async def login(request: Request, service: Proxy) -> Response:
    check_same_origin(request)
    form = await read_form(request)
    session, token = service.sign_in(form.get("user_id", ""))
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=session.lifetime_seconds, **cookie_options(request)
    )
    return response


@router.post(
    "/logout",
    tags=["session"],
    summary="Sign out (form: next)",
    status_code=303,
    responses=error_responses(403),
)
async def logout(request: Request) -> Response:
    check_same_origin(request)
    next_url = "/login"
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        next_url = safe_next((await read_form(request)).get("next"), default="/login")
    response = RedirectResponse(next_url, status_code=303)
    response.delete_cookie(SESSION_COOKIE, **cookie_options(request))
    return response


@router.get(
    "/4.0/go-pay/v1/session",
    tags=["session"],
    summary="Who the caller is signed in as",
    response_model=SessionView,
)
async def whoami(session: CurrentSession) -> SessionView:
    return SessionView(user_id=session.user_id if session else None)


# --- forwarding ---------------------------------------------------------------------------


async def forward(
    request: Request, path: str, session: Session | None, service: ApiProxyService
) -> Response:
    body: bytes | None = None
    if request.method == "POST":
        check_same_origin(request)
        service.authorize(request.method, path, session)
        service.limit_pay(session)
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise InvalidInput("send the body as application/json", code="invalid_content_type")
    answer = await service.forward_payments(
        request.method,
        path,
        session=session,
        language=request_language(request) or "ru",
        params=list(request.query_params.multi_items()),
        body=await request.body() if request.method == "POST" else body,
        token=request.headers.get(IDEMPOTENCY_TOKEN_HEADER) if request.method == "POST" else None,
    )
    return Response(
        answer.body,
        status_code=answer.status,
        media_type=answer.content_type,
        headers=dict(answer.headers),
    )


@router.get(
    "/4.0/payments/v1/{path:path}",
    tags=["payments"],
    summary="payments-eda's payer API (preorder, payment status), with the user's headers",
    responses=error_responses(404, 503),
)
async def payments_get(
    request: Request, path: str, session: CurrentSession, service: Proxy
) -> Response:
    return await forward(request, path, session, service)


@router.post(
    "/4.0/payments/v1/{path:path}",
    tags=["payments"],
    summary=(
        "payments-eda's pay call; needs a session and, for a share, X-Idempotency-Token. "
        "A pay whose outcome is lost on the way is answered 200 WAITING, never 5xx"
    ),
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def payments_post(
    request: Request, path: str, session: CurrentSession, service: Proxy
) -> Response:
    return await forward(request, path, session, service)


@router.get(
    "/4.0/go-pay/v1/availability",
    tags=["go-pay"],
    summary="Whether pay-by-QR is on for the signed-in user in a zone",
    response_model=AvailabilityResponse,
    responses=error_responses(400, 503),
)
async def availability(
    session: CurrentSession, service: Proxy, nearest_zone: Zone = ""
) -> AvailabilityResponse:
    return AvailabilityResponse(
        is_available=await service.availability(nearest_zone=nearest_zone, session=session)
    )


@router.get(
    "/4.0/go-pay/v1/restaurants",
    tags=["go-pay"],
    summary="Restaurants with cashback in a zone, for the signed-in user",
    response_model=RestaurantsResponse,
    responses=error_responses(400, 503),
)
async def restaurants(
    session: CurrentSession, service: Proxy, nearest_zone: Zone = ""
) -> RestaurantsResponse:
    return RestaurantsResponse(
        restaurants=await service.restaurants(nearest_zone=nearest_zone, session=session)
    )


# --- pages --------------------------------------------------------------------------------


@router.get("/go-pay/orders", include_in_schema=False)
async def payer_page(request: Request, session: CurrentSession) -> HTMLResponse:
    return html(
        shell(
            "pay.html",
            language=request_language(request),
            user_id=session.user_id if session else None,
        )
    )


@router.get("/go-pay/restaurants", include_in_schema=False)
async def restaurants_page(request: Request, session: CurrentSession) -> HTMLResponse:
    return html(
        shell(
            "restaurants.html",
            language=request_language(request),
            user_id=session.user_id if session else None,
        )
    )


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/go-pay/restaurants", status_code=302)
