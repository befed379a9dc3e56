"""FastRoutes: what it serves itself from a route's FastAPI declaration, and what it hands
on to the app untouched."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from qrpay.kernel.errors import Forbidden
from qrpay.kernel.fast_routes import FastRoutes, fast_routes_of, served_fast
from qrpay.kernel.http import install_error_handlers, json_response


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


class Echo(BaseModel):
    a: int
    forbid: bool = False


async def api_key(
    request: Request, x_api_key: Annotated[str | None, Header()] = None
) -> str | None:
    request.app.state.keys.append(x_api_key)
    return x_api_key


# Module level: this module's annotations are strings FastAPI resolves in its globals.
Key = Annotated[str | None, Depends(api_key)]


def declared() -> tuple[FastAPI, list[str | None]]:
    """An app with one route marked ``@served_fast``; the keys its dependency saw."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(prefix="/v1")
    keys: list[str | None] = []
    app.state.keys = keys

    @router.post("/fast")
    @served_fast
    async def fast(
        body: Echo, key: Key, again: Key, limit: Annotated[int, Query(ge=1, le=5)] = 1
    ) -> Response:
        if body.forbid:
            raise Forbidden("no", code="forbidden_client")
        return json_response(200, {"got": body.a, "key": key, "limit": limit})

    @router.post("/slow")
    async def slow(body: Echo) -> Response:
        raise AssertionError("not served fast")

    @router.post("/items/special")
    async def special(body: Echo) -> Response:
        raise AssertionError("declared first: FastAPI's")

    @router.post("/items/{item_id}")
    @served_fast
    async def item(item_id: Annotated[int, Path(ge=1)], body: Echo, key: Key) -> Response:
        return json_response(200, {"item": item_id, "got": body.a})

    app.include_router(router)
    return app, keys


async def call(
    routes: FastRoutes,
    messages: list[Message],
    *,
    path: str = "/v1/fast",
    query: bytes = b"",
    content_type: bool = True,
    app: Any = None,
) -> tuple[Scope, list[Message]]:
    headers = [(b"x-api-key", b"k")]
    if content_type:
        headers.append((b"content-type", b"application/json"))
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": headers,
        "query_string": query,
        "app": routes.routes[("POST", "/v1/fast")].app if app is None else app,
    }
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


def make() -> tuple[FastRoutes, Inner, list[str | None]]:
    app, keys = declared()
    inner = Inner()
    return FastRoutes(inner, routes=fast_routes_of(app)), inner, keys


def answer(sent: list[Message]) -> tuple[int, Any]:
    status = sent[0]["status"]
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return status, orjson.loads(data) if data else None


async def test_an_accepted_request_is_served_without_the_app() -> None:
    routes, inner, keys = make()
    scope, sent = await call(routes, [body(b'{"a":', more=True), body(b" 1}")], query=b"limit=5")
    assert answer(sent) == (200, {"got": 1, "key": "k", "limit": 5})
    assert inner.bodies == []
    assert scope["route"].path == "/v1/fast"  # the metrics' handler label
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert keys == ["k"]  # a dependency used twice is called once, as FastAPI caches it


@pytest.mark.parametrize(
    ("data", "query"),
    [
        (b'{"a": "x"}', b""),  # the body model refuses it
        (b'{"b": 1}', b""),
        (b"[]", b""),
        (b'{"a": 1}', b"limit=6"),  # over the declared limit
        (b'{"a": 1}', b"limit=0"),
        (b'{"a": 1}', b"limit=two"),
    ],
)
async def test_what_the_declaration_refuses_reaches_the_app_with_nothing_run(
    data: bytes, query: bytes
) -> None:
    routes, inner, keys = make()
    _, sent = await call(routes, [body(data[:2], more=True), body(data[2:])], query=query)
    assert sent[0]["status"] == 299
    assert inner.bodies == [data]
    assert keys == []  # no dependency ran: FastAPI runs them once, for its answer


async def test_a_path_parameter_is_matched_converted_and_validated_as_declared() -> None:
    routes, inner, keys = make()
    scope, sent = await call(routes, [body(b'{"a": 2}')], path="/v1/items/7")
    assert inner.bodies == []
    assert answer(sent) == (200, {"item": 7, "got": 2})
    assert scope["route"].path == "/v1/items/{item_id}"
    for refused in ("/v1/items/0", "/v1/items/x", "/v1/items/7/more"):
        _, sent = await call(routes, [body(b'{"a": 2}')], path=refused)
        assert sent[0]["status"] == 299
    assert keys == ["k"]
    assert len(inner.bodies) == 3


async def test_a_path_an_earlier_route_takes_is_left_to_fastapi() -> None:
    routes, inner, keys = make()
    _, sent = await call(routes, [body(b'{"a": 2}')], path="/v1/items/special")
    assert sent[0]["status"] == 299
    assert inner.bodies == [b'{"a": 2}']
    assert keys == []


async def test_bad_json_and_other_content_types_reach_the_app() -> None:
    routes, inner, _ = make()
    await call(routes, [body(b"{")])
    await call(routes, [body(b'{"a": 1}')], content_type=False)
    await call(routes, [body(b"")])
    assert inner.bodies == [b"{", b'{"a": 1}', b""]


async def test_a_disconnect_while_reading_is_replayed_to_the_app() -> None:
    routes, inner, _ = make()
    await call(routes, [body(b'{"a"', more=True), {"type": "http.disconnect"}])
    assert inner.bodies == [b"<disconnect>"]


async def test_an_error_of_the_use_case_is_answered_by_the_app_s_handlers() -> None:
    routes, inner, _ = make()
    scope, sent = await call(routes, [body(b'{"a": 1, "forbid": true}')])
    assert answer(sent) == (403, {"code": "forbidden_client", "message": "no"})
    assert inner.bodies == []
    assert scope["route"].path == "/v1/fast"


async def test_dependency_overrides_are_left_to_fastapi() -> None:
    app, _ = declared()
    inner = Inner()
    routes = FastRoutes(inner, routes=fast_routes_of(app))
    app.dependency_overrides[Echo] = Echo
    _, sent = await call(routes, [body(b'{"a": 1}')])
    assert sent[0]["status"] == 299


async def test_other_paths_and_scopes_go_to_the_app() -> None:
    routes, inner, _ = make()
    _, sent = await call(routes, [body(b'{"a": 1}')], path="/v1/slow")
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


def _sync_key(x_api_key: Annotated[str | None, Header()] = None) -> str | None:
    return x_api_key


async def _ok() -> Response:
    return Response()


async def _with_sync_dependency(key: Annotated[str | None, Depends(_sync_key)]) -> Response:
    return Response()


@pytest.mark.parametrize(
    ("path", "endpoint", "methods", "why"),
    [
        ("/ping", _ok, ["GET"], "a route declared before it serves the same path"),
        ("/sync", _with_sync_dependency, ["GET"], "not an async function"),
        ("/two", _ok, ["GET", "POST"], "not one method"),
    ],
)
def test_a_declaration_it_cannot_serve_faithfully_is_refused_when_the_app_is_built(
    path: str, endpoint: Any, methods: list[str], why: str
) -> None:
    app = FastAPI()
    app.add_api_route("/ping", _ok, methods=["GET"])
    app.add_api_route(path, served_fast(endpoint), methods=methods)
    with pytest.raises(ValueError, match=why):
        fast_routes_of(app)
