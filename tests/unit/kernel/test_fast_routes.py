"""FastRoutes: what it serves itself, and what it hands on to the app untouched."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from qrpay.kernel.errors import Forbidden
from qrpay.kernel.fast_routes import FastRequest, FastRoute, FastRoutes
from qrpay.kernel.http import error_answer


class Inner:
    """The app behind: records the body it reads and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                self.bodies.append(b"<disconnect>")
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def echo(request: FastRequest) -> bytes | None:
    value = request.json()
    if value.get("refuse"):
        return None
    if value.get("forbid"):
        raise Forbidden("no", code="forbidden_client")
    return orjson.dumps({"got": value, "key": request.header(b"x-api-key")})


async def call(
    routes: FastRoutes, messages: list[Message], *, path: str = "/fast", content_type: bool = True
) -> tuple[Scope, list[Message]]:
    headers = [(b"x-api-key", b"k")]
    if content_type:
        headers.append((b"content-type", b"application/json"))
    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await routes(scope, receive, send)
    return scope, sent


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


def make() -> tuple[FastRoutes, Inner]:
    inner = Inner()
    route = FastRoute("POST", "/fast", echo)
    return FastRoutes(inner, routes=[route], error_answer=error_answer), inner


def answer(sent: list[Message]) -> tuple[int, Any]:
    status = sent[0]["status"]
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return status, orjson.loads(data) if data else None


async def test_an_accepted_request_is_served_without_the_app() -> None:
    routes, inner = make()
    scope, sent = await call(routes, [body(b'{"a":', more=True), body(b" 1}")])
    assert answer(sent) == (200, {"got": {"a": 1}, "key": "k"})
    assert inner.bodies == []
    assert scope["route"].path == "/fast"  # the metrics' handler label
    assert (b"content-type", b"application/json") in sent[0]["headers"]


async def test_a_refused_request_reaches_the_app_with_its_whole_body() -> None:
    routes, inner = make()
    _, sent = await call(routes, [body(b'{"refuse":', more=True), body(b" true}")])
    assert sent[0]["status"] == 299
    assert inner.bodies == [b'{"refuse": true}']


async def test_bad_json_and_other_content_types_reach_the_app() -> None:
    routes, inner = make()
    await call(routes, [body(b"{")])
    await call(routes, [body(b'{"a": 1}')], content_type=False)
    assert inner.bodies == [b"{", b'{"a": 1}']


async def test_a_disconnect_while_reading_is_replayed_to_the_app() -> None:
    routes, inner = make()
    await call(routes, [body(b'{"a"', more=True), {"type": "http.disconnect"}])
    assert inner.bodies == [b"<disconnect>"]


async def test_an_error_of_the_use_case_is_answered_by_the_one_mapping() -> None:
    routes, inner = make()
    scope, sent = await call(routes, [body(b'{"forbid": true}')])
    assert answer(sent) == (403, {"code": "forbidden_client", "message": "no"})
    assert inner.bodies == []
    assert scope["route"].path == "/fast"


async def test_other_paths_and_scopes_go_to_the_app() -> None:
    routes, inner = make()
    _, sent = await call(routes, [body(b'{"a": 1}')], path="/other")
    assert sent[0]["status"] == 299
    assert inner.bodies == [b'{"a": 1}']
    lifespan: list[str] = []

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        lifespan.append(scope["type"])

    async def nothing(*_args: Any) -> Any:
        raise AssertionError("not called")

    routes.app = app
    await routes({"type": "lifespan"}, nothing, nothing)
    assert lifespan == ["lifespan"]
