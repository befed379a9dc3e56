"""The HTTP side every service shares: app factory, error mapping, middleware.

Errors become HTTP answers here and nowhere else: ``STATUS_BY_KIND`` is the
one table from an error's kind to its status, and every error body is
``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrpay.kernel.config import HttpConfig
from qrpay.kernel.edge import EdgeMiddleware
from qrpay.kernel.errors import ErrorKind, PayloadTooLarge, QrpayError, RateLimited
from qrpay.kernel.fast_routes import FastRoutes, fast_routes_of
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.request_context import (
    accept_request_id,
    reset_request_id,
    set_request_id,
)
from qrpay.kernel.schemas import CUSTOM_ERROR_CODES

log = structlog.get_logger("qrpay.http")

STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}
KIND_BY_STATUS: dict[int, ErrorKind] = {status: kind for kind, status in STATUS_BY_KIND.items()}
KIND_BY_STATUS[422] = ErrorKind.INVALID


class ErrorBody(BaseModel):
    code: str
    message: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in statuses}


M = TypeVar("M", bound=BaseModel)


def view(model: type[M], source: object, **values: Any) -> M:
    """``model`` filled from ``source``'s attributes of the same names, ``values`` for the rest."""
    named = {name: getattr(source, name) for name in model.model_fields if name not in values}
    return model(**named, **values)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def model_response(model: BaseModel, headers: Mapping[str, str] | None = None) -> Response:
    """A 200 answer of ``model``, serialized as FastAPI serializes a response model (by
    alias): a route served fast (kernel/fast_routes.py) answers a ``Response`` itself."""
    return Response(
        model.__pydantic_serializer__.to_json(model, by_alias=True),
        media_type="application/json",
        headers=headers,
    )


def error_response(error: QrpayError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    return json_response(
        STATUS_BY_KIND[error.kind], {"code": error.code, "message": error.message}, headers
    )


def error_answer(error: QrpayError) -> Response:
    """The answer to a ``QrpayError`` raised by a route; an outage or a bug is logged."""
    if error.kind in (ErrorKind.UNAVAILABLE, ErrorKind.INTERNAL):
        log.warning("request_failed", code=error.code, reason=error.message)
    return error_response(error)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if not errors:
        return "invalid_request", "the request is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "invalid_json", "the body is not valid JSON"
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid value"))
    if first.get("type") in CUSTOM_ERROR_CODES:
        return str(first["type"]), f"{location}: {message}" if location else message
    if first.get("type") == "extra_forbidden":
        return "unknown_field", f"unknown field {location}"
    if first.get("type") == "missing":
        return "missing_field", f"{location} is required"
    return "invalid_request", f"{location}: {message}" if location else message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QrpayError)
    async def _qrpay_error(_request: Request, exc: QrpayError) -> Response:
        return error_answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        code, message = _validation_message(exc)
        return json_response(400, {"code": code, "message": message[:500]})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(
            exc.status_code, {"code": code, "message": str(exc.detail)}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error=repr(exc))
        return json_response(500, {"code": "internal_error", "message": "internal error"})


# Never refused for overload: the orchestrator must still see the instance alive and
# scrape it while it sheds load.
OPS_PATHS = frozenset({"/ping", "/ready", "/metrics"})
DEFAULT_MAX_IN_FLIGHT = 256
# What answers a WebSocket handshake: accepted, closed, or refused with an HTTP answer.
_HANDSHAKE_ANSWERS = frozenset(
    {"websocket.accept", "websocket.close", "websocket.http.response.start"}
)


_OVERLOADED = orjson.dumps({"code": "overloaded", "message": "the service is overloaded"})


async def _send_overloaded(send: Send, prefix: str, headers: list[tuple[bytes, bytes]]) -> None:
    """503 ``overloaded``, retry in a second: an HTTP answer (``prefix`` "") or a WebSocket
    handshake's (``prefix`` "websocket.")."""
    await send(
        {
            "type": f"{prefix}http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_OVERLOADED)).encode()),
                (b"retry-after", b"1"),
                *headers,
            ],
        }
    )
    await send({"type": f"{prefix}http.response.body", "body": _OVERLOADED})


# The middleware that admitted the running request (``parked``).
_ADMITTED: ContextVar[RequestMiddleware | None] = ContextVar("qrpay_admitted", default=None)


@contextmanager
def parked() -> Iterator[None]:
    """The request waits, doing no work (a long-poll), for the block: meanwhile it holds
    no in-flight slot of its instance, so waiting guests never shed the requests that work.
    It takes its slot back when it goes on, even past the limit: it was admitted once."""
    gate = _ADMITTED.get()
    if gate is None:
        yield
        return
    gate.in_flight -= 1
    try:
        yield
    finally:
        gate.in_flight += 1


class RequestMiddleware:
    """Request id, per-handler metrics, the body size limit and overload shedding, as plain ASGI.

    It runs on every request of every service, so it does one pass over the
    headers and tallies its metrics in the process (``ServiceMetrics.observe_request``).

    Overload: at most ``max_in_flight()`` requests run at once in this instance;
    one more is answered 503 ``overloaded`` with ``Retry-After: 1`` at once,
    without running the app, so a saturated instance fails fast instead of
    queueing work its callers have already given up on.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        max_body: Callable[[], int],
        max_in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.max_in_flight = max_in_flight or (lambda: DEFAULT_MAX_IN_FLIGHT)
        self.in_flight = 0
        self._refusals = metrics.http_overload_refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._handshake(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPS_PATHS:
            await self._handle(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight():
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        admitted = _ADMITTED.set(self)
        try:
            await self._handle(scope, receive, send)
        finally:
            _ADMITTED.reset(admitted)
            self.in_flight -= 1

    async def _handshake(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake is a request like any other until it is answered: refused
        when the instance is saturated, and holding a slot meanwhile. The open stream then
        holds none (a POS keeps it for hours); streams have their own caps (e.g. the POS
        stream's ``push.max_streams``)."""
        if self.in_flight >= self.max_in_flight():
            self._refusals.inc()
            await self._refuse_handshake(scope, send)
            return
        self.in_flight += 1
        answered = False

        async def send_answer(message: Message) -> None:
            nonlocal answered
            if not answered and message["type"] in _HANDSHAKE_ANSWERS:
                answered = True
                self.in_flight -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_answer)
        finally:
            if not answered:
                self.in_flight -= 1

    async def _refuse_handshake(self, scope: Scope, send: Send) -> None:
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        await _send_overloaded(send, "websocket.", [])

    async def _refuse(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        self._refusals.inc()
        given_id = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"x-request-id"),
            None,
        )
        request_id = (b"x-request-id", accept_request_id(given_id).encode())
        await _send_overloaded(send, "", [request_id])
        self._observe(scope, 503, started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        given_id: str | None = None
        declared: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given_id = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        request_id = accept_request_id(given_id)
        token = set_request_id(request_id)
        status = 500
        limit = self.max_body()
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        received = 0

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Frameworks turn exceptions raised while reading into 400s;
                    # a disconnect stops the read, and the 413 is answered below.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        header = (b"x-request-id", request_id.encode())

        async def send_checked(message: Message) -> None:
            nonlocal status
            if too_large:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            if not too_large:
                await self.app(scope, limited_receive, send_checked)
        except Exception:
            if not too_large:
                raise
        finally:
            if too_large:
                status = 413
                await error_response(PayloadTooLarge(f"the body is larger than {limit} bytes"))(
                    scope, receive, send
                )
            self._observe(scope, status, started)
            reset_request_id(token)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        handler = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request(
            handler, scope.get("method", ""), status, time.perf_counter() - started
        )


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    *,
    service: str,
    metrics: ServiceMetrics,
    max_body: Callable[[], int],
    max_in_flight: Callable[[], int] | None = None,
    lifespan: Lifespan | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
    description: str = "",
    http: Callable[[], HttpConfig] = HttpConfig,
    public: bool = False,
    router: APIRouter | None = None,
    serve_fast: bool = True,
) -> FastAPI:
    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield

    app = FastAPI(
        title=f"qrpay {service}",
        description=description,
        version="1.0.0",
        lifespan=_lifespan,
        # A public service's routes are rate limited (kernel.ratelimit).
        responses=error_responses(400, 413, 500, 503, *((429,) if public else ())),
    )
    install_error_handlers(app)

    @app.get("/ping", tags=["ops"], summary="Liveness")
    async def ping() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/ready", tags=["ops"], summary="Readiness", responses=error_responses(503))
    async def readiness() -> dict[str, str]:
        if ready is not None:
            await ready()
        return {"status": "ready", "service": service}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    if router is not None:
        app.include_router(router)
    fast_routes = fast_routes_of(app) if serve_fast else []
    if fast_routes:
        # Added first, so it runs inside the edge and request middlewares (forwarded
        # headers, private endpoints, request id, metrics, body limit, overload shedding),
        # which apply to these routes as to any other.
        app.add_middleware(FastRoutes, routes=fast_routes)
    # Inside RequestMiddleware: its answers are counted and carry the request id.
    app.add_middleware(EdgeMiddleware, http=http, public=public)
    app.add_middleware(
        RequestMiddleware, metrics=metrics, max_body=max_body, max_in_flight=max_in_flight
    )
    app.state.service = service
    app.state.metrics = metrics
    return app
