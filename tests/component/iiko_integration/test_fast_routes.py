"""The POS routes served before FastAPI's router answer exactly as the FastAPI routes do.

Each request goes to two instances over the same fake eda: the service as built (fast
routes on) and the same service with its fast routes taken away (every request through
FastAPI). Status, content type and body must be the same bytes, for every refusal and
for the successes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from qrpay.iiko_integration.app import SERVICE
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import ServiceContext
from tests.component.iiko_integration.test_validation import CASES as CREATE_CASES
from tests.support.component.iiko_integration import HEADERS, eda_order, valid_order
from tests.support.mockserver import MockServer
from tests.support.served_fast import Drawn, answers_alike, drawn_requests, served_fast_paths
from tests.support.services import dev_config, make_context, point_services_at, served_in_process

JSON = {"Content-Type": "application/json"}
POS = {**HEADERS, **JSON}
LIST_BODY = {"client_id": "rest-1", "orders": ["paid", "unknown", "paid"]}


def list_body(**overrides: Any) -> bytes:
    return orjson.dumps({**LIST_BODY, **overrides})


# (name, path, raw body, headers): refusals of every kind, and successes.
CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    *((f"create: {name}", "/orders", raw, {**HEADERS, **JSON}) for name, raw, *_ in CREATE_CASES),
    ("create: valid", "/orders", orjson.dumps(valid_order()), {**HEADERS, **JSON}),
    ("create: valid, no content type", "/orders", orjson.dumps(valid_order()), HEADERS),
    ("create: no key", "/orders", orjson.dumps(valid_order()), JSON),
    ("create: wrong key", "/orders", orjson.dumps(valid_order()), {"X-API-Key": "x", **JSON}),
    ("create: no key, bad JSON", "/orders", b"{", JSON),
    ("create: other restaurant", "/orders", orjson.dumps(valid_order(client_id="rest-9")), POS),
    ("list: valid", "/orders/list", list_body(), {**HEADERS, **JSON}),
    (
        "list: charset",
        "/orders/list",
        list_body(),
        {**HEADERS, "Content-Type": JSON["Content-Type"] + "; charset=utf-8"},
    ),
    ("list: no content type", "/orders/list", list_body(), HEADERS),
    ("list: text/plain", "/orders/list", list_body(), {**HEADERS, "Content-Type": "text/plain"}),
    ("list: +json", "/orders/list", list_body(), {**HEADERS, "Content-Type": "application/x+json"}),
    ("list: no key", "/orders/list", list_body(), JSON),
    ("list: empty key", "/orders/list", list_body(), {"X-API-Key": "", **JSON}),
    ("list: wrong key, invalid body", "/orders/list", list_body(orders=[]), {"X-API-Key": "x"}),
    ("list: other restaurant", "/orders/list", list_body(client_id="rest-9"), POS),
    ("list: no orders", "/orders/list", list_body(orders=[]), POS),
    ("list: 101 orders", "/orders/list", list_body(orders=["a"] * 101), POS),
    ("list: 100 orders", "/orders/list", list_body(orders=["a"] * 100), POS),
    ("list: NUL in an id", "/orders/list", list_body(orders=["a\x00"]), POS),
    ("list: number id", "/orders/list", list_body(orders=[1]), POS),
    ("list: extra field", "/orders/list", list_body(extra=1), POS),
    ("list: missing orders", "/orders/list", b'{"client_id": "rest-1"}', POS),
    ("list: null", "/orders/list", b"null", POS),
    ("list: a list", "/orders/list", b"[]", POS),
    ("list: empty", "/orders/list", b"", POS),
    ("list: NaN", "/orders/list", b'{"client_id": "rest-1", "orders": [NaN]}', POS),
    (
        "list: huge int",
        "/orders/list",
        b'{"client_id": "rest-1", "orders": [' + b"9" * 30 + b"]}",
        HEADERS,
    ),
    (
        "list: lone surrogate",
        "/orders/list",
        b'{"client_id": "rest-1", "orders": ["\\ud800"]}',
        HEADERS,
    ),
    ("list: BOM", "/orders/list", b"\xef\xbb\xbf" + list_body(), POS),
    ("list: UTF-16", "/orders/list", list_body().decode().encode("utf-16-le"), POS),
    (
        "list: duplicate keys",
        "/orders/list",
        b'{"client_id": "rest-9", "client_id": "rest-1", "orders": ["paid"]}',
        HEADERS,
    ),
    ("list: over the size limit", "/orders/list", list_body(orders=["a" * (1024 * 1024)]), POS),
]


def fake_eda(mockserver: MockServer) -> None:
    @mockserver.handler("/v1/orders")
    async def _create(request: web.Request) -> dict[str, Any]:
        return {"order": eda_order(await request.json()), "outcome": "created"}

    @mockserver.handler("/v1/orders/statuses")
    async def _statuses(_request: web.Request) -> dict[str, Any]:
        return {"orders": [{"order_id": "paid", "client_id": "rest-1", "status": "PAYED"}]}


def serving(ctx: ServiceContext, *, fast: bool) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return served_in_process(SERVICE, ctx, fast=fast)


@pytest.mark.parametrize(
    ("path", "raw", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_fast_route_answers_like_the_fastapi_route(
    iiko_context: Callable[..., ServiceContext],
    mockserver: MockServer,
    path: str,
    raw: bytes,
    headers: dict[str, str],
) -> None:
    fake_eda(mockserver)
    answers = []
    for fast in (True, False):
        async with serving(iiko_context(), fast=fast) as client:
            answers.append(await client.post(path, content=raw, headers=headers))
    fast_answer, plain_answer = answers
    assert fast_answer.status_code == plain_answer.status_code, fast_answer.text
    assert fast_answer.headers["content-type"] == plain_answer.headers["content-type"]
    assert fast_answer.content == plain_answer.content


async def test_fast_routes_are_counted_under_their_path(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    fake_eda(mockserver)
    async with serving(iiko_context(), fast=True) as client:
        for _ in range(3):
            answer = await client.post("/orders/list", content=list_body(), headers=POS)
            assert answer.status_code == 200
        assert (await client.post("/orders", json=valid_order(), headers=POS)).is_success
        refused = await client.post("/orders/list", content=list_body(orders=[]), headers=POS)
        assert refused.status_code == 400
        assert "x-request-id" in answer.headers
        metrics = (await client.get("/metrics")).text
    assert 'handler="/orders/list",method="POST",status="200"} 3.0' in metrics
    assert 'handler="/orders/list",method="POST",status="400"} 1.0' in metrics
    assert 'handler="/orders",method="POST",status="200"} 1.0' in metrics


def test_the_openapi_document_is_the_fastapi_routes_one(
    iiko_context: Callable[..., ServiceContext],
) -> None:
    fast = SERVICE.build(iiko_context()).openapi()
    plain = dataclasses.replace(SERVICE, serve_fast=False).build(iiko_context()).openapi()
    assert fast == plain
    for method, path in served_fast_paths(SERVICE.build(iiko_context())):
        assert method.lower() in fast["paths"][path]


def _known_restaurant(drawn: Drawn) -> Drawn:
    """The body's restaurant the test's key may use, so more draws pass the key's scope."""
    try:
        body = orjson.loads(drawn.content or b"")
    except orjson.JSONDecodeError:
        return drawn
    if not isinstance(body, dict) or "client_id" not in body:
        return drawn
    return dataclasses.replace(drawn, content=orjson.dumps({**body, "client_id": "rest-1"}))


async def test_requests_drawn_from_the_openapi_document_are_answered_alike(
    tmp_path: Path, mockserver: MockServer
) -> None:
    fake_eda(mockserver)
    config = point_services_at(dev_config(), mockserver.base_url, "eda")

    def context() -> ServiceContext:
        # Frozen: both instances' rate limits then refill alike, whatever the timing.
        return make_context("iiko-integration", tmp_path, config=config, clock=FrozenClock())

    async with serving(context(), fast=True) as fast, serving(context(), fast=False) as plain:
        app = SERVICE.build(context())
        routes = served_fast_paths(app)
        assert routes == [("POST", "/orders"), ("POST", "/orders/list")]
        for method, path in routes:
            requests = drawn_requests(
                app, method, path, legitimate=HEADERS, steer=_known_restaurant
            )
            statuses = await answers_alike(fast, plain, requests, examples=60)
            # Past the key: the route's own checks were reached, not only refusals of it.
            assert {400, 200} & set(statuses), statuses
