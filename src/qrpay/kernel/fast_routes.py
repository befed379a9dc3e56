"""Hot routes answered before FastAPI's router, with the same contract.

Measured under `make bench-pos` (py-spy, 2026-12-01): for the POS routes, FastAPI's
routing, dependency solving and body handling took about 55% of the POS service's CPU,
the route's own work under 10%. A ``FastRoute`` serves a request whose every check
passes without those layers: the body is parsed with orjson and validated by the same
pydantic model, the caller authenticated by the same function. Whatever does not pass
(bad JSON, another content type, a missing key, a body the model refuses, a body cut
off over the size limit) is handed, untouched, to the FastAPI route declared for the
same path, so every refusal is FastAPI's own: the same status, code and body. The
FastAPI declarations stay the OpenAPI document.

An error raised once the request was accepted (the use case's ``QrpayError``) is
answered by the same mapping as every other route's (``http.error_answer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrpay.kernel.errors import QrpayError

T = TypeVar("T")
_JSON = "application/json"

# What a handler answers: the body of a 200 JSON answer, or None for "not mine: let the
# FastAPI route answer it" (any refusal).
Handler = Callable[["FastRequest"], Awaitable[bytes | None]]


class NotJson(Exception):
    """The body is not one FastAPI would parse as the same JSON value."""


class FastRequest:
    __slots__ = ("body", "scope")

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.scope = scope
        self.body = body

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), decoded like Starlette does."""
        for key, value in self.scope["headers"]:
            if key == name:
                return cast(bytes, value).decode("latin-1")
        return None

    def json(self) -> Any:
        """The body's JSON value; ``NotJson`` where FastAPI might not read the same value.

        FastAPI parses a body with a JSON content type with ``json.loads`` (and refuses one
        without a content type). orjson reads the same value wherever it reads one at all:
        it refuses NaN, integers past 64 bits, lone surrogates and other encodings, which
        then go to FastAPI.
        """
        content_type = self.header(b"content-type")
        if not self.body or content_type is None:
            raise NotJson
        if content_type.split(";", 1)[0].strip().lower() != _JSON:
            raise NotJson
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise NotJson from None

    def query(self, names: Collection[str]) -> dict[str, str] | None:
        """The query's parameters, read as Starlette reads them; None where FastAPI might
        read another value (a parameter given twice) or one not among ``names``."""
        pairs = parse_qsl(
            cast(bytes, self.scope["query_string"]).decode("latin-1"), keep_blank_values=True
        )
        query = dict(pairs)
        if len(query) != len(pairs) or not query.keys() <= set(names):
            return None
        return query

    def service(self, kind: type[T]) -> T:
        """The app's service of type ``kind`` (as ``kernel.service.provide`` gives routes)."""
        return cast(T, self.scope["app"].state.services[kind])


@dataclass(frozen=True)
class FastRoute:
    method: str
    # Also the metrics' handler label, as for a FastAPI route (``RequestMiddleware``).
    path: str
    handle: Handler


ErrorAnswer = Callable[[QrpayError], ASGIApp]


class FastRoutes:
    """ASGI middleware between the request middleware and FastAPI: serves ``routes``."""

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[FastRoute], error_answer: ErrorAnswer
    ) -> None:
        self.app = app
        self.routes = {(route.method, route.path): route for route in routes}
        self.error_answer = error_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                # A disconnect (or the body cut off over the limit): FastAPI's to handle.
                await self.app(scope, _replay(read, receive), send)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            answer = await route.handle(FastRequest(scope, body))
        except NotJson:
            answer = None
        except QrpayError as error:
            scope["route"] = route
            await self.error_answer(error)(scope, receive, send)
            return
        if answer is None:
            await self.app(scope, _replay(read, receive), send)
            return
        scope["route"] = route
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(answer)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _replay(read: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: the messages read come first."""
    pending = list(read)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
