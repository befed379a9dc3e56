"""Property-based conformance of payments-eda's OpenAPI document (schemathesis).

Schemathesis drives the app synchronously from its own event loop thread, so the
permissive fakes of eda, cardstorage and transactions run on a loop of their own in
another thread. Every generated order id gets a valid signature, so the success
paths are reached too.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import build_app
from tests.support.component.payments_eda import (
    USER,
    card_body,
    config_for,
    invoice_body,
    operation_body,
    order_body,
    public_card,
    signature,
)
from tests.support.mockserver import json_response
from tests.support.services import make_context

BILL = "100"  # the amount of the PayRequest example in the schema


@dataclass
class Fakes:
    base_url: str = ""
    hits: Counter[str] = field(default_factory=Counter)


def _fake_app(fakes: Fakes) -> web.Application:
    routes = web.RouteTableDef()

    def hit(name: str) -> None:
        fakes.hits[name] += 1

    @routes.get("/v1/orders/{order_id}")
    async def get_order(request: web.Request) -> web.Response:
        hit("get_order")
        return json_response(order_body(order_id=request.match_info["order_id"], amount=BILL))

    @routes.post("/v1/orders/{order_id}/payment/{action}")
    async def payment(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        hit(action)
        status = "PAYMENT_IN_PROGRESS" if action == "start" else "WAITING"
        body = await request.json()
        return json_response(
            order_body(
                status,
                order_id=request.match_info["order_id"],
                payment_id=body["payment_id"] if action == "start" else None,
                amount=BILL,
            )
        )

    @routes.get("/v1/payment-methods")
    async def list_cards(_request: web.Request) -> web.Response:
        hit("list_cards")
        return json_response({"payment_methods": [public_card()]})

    @routes.get("/v1/payment-methods/{method_id}")
    async def get_card(request: web.Request) -> web.Response:
        hit("get_card")
        return json_response(
            card_body(request.match_info["method_id"], user_id=request.query["user_id"])
        )

    @routes.put("/v1/invoices/{invoice_id}")
    async def ensure_invoice(_request: web.Request) -> web.Response:
        hit("ensure_invoice")
        return json_response(invoice_body())

    @routes.get("/v1/invoices/{invoice_id}")
    async def get_invoice(_request: web.Request) -> web.Response:
        hit("get_invoice")
        return json_response({"code": "invoice_not_found", "message": "none"}, 404)

    @routes.post("/v1/invoices/{invoice_id}/operations")
    async def operations(request: web.Request) -> web.Response:
        hit("hold")
        body = await request.json()
        return json_response(operation_body(body["operation_id"]))

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fakes = Fakes()
    runner = web.AppRunner(_fake_app(fakes), access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fakes.base_url = f"http://127.0.0.1:{port}"

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    yield fakes
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()
    # The success paths were reached, so their answers were checked against the schema too.
    assert fakes.hits["get_order"] > 0
    assert fakes.hits["hold"] > 0
    assert fakes.hits["list_cards"] > 0


@dataclass
class _Base:
    base_url: str


@pytest.fixture
def payments_schema(fakes: Fakes, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    # schemathesis' lazy loader reads `node._nodeid`, which pytest 9 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    config = config_for(_Base(fakes.base_url))  # type: ignore[arg-type]
    ctx = make_context("payments-eda", tmp_path, config=config, queue=TaskQueue())
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(ctx))


EXCLUDED_CHECKS = [
    # Schema-valid is not business-valid: a bill that changed, a malformed amount string,
    # a wrong signature are 4xx by contract.
    positive_data_acceptance,
]

schema = schemathesis.pytest.from_fixture("payments_schema")


def _sign(case: Any) -> None:
    """Sign the order id of a valid case, and act as a signed-in guest unless told otherwise."""
    if case.headers is None:
        case.headers = {}
    case.headers.setdefault("X-Yandex-UID", USER)
    meta = case.meta
    if meta is not None and meta.generation.mode is not GenerationMode.POSITIVE:
        return  # an invalid case keeps its flaw (a bad signature there answers 404 anyway)
    query = case.query
    if isinstance(query, dict) and isinstance(query.get("order_id"), str):
        query["hmac"] = signature(query["order_id"])
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("order_id"), str):
        body["hmac"] = signature(body["order_id"])


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    _sign(case)
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)
