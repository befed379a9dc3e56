"""What the schema and fuzz tests share: a loop in a thread, and permissive downstreams.

Schemathesis drives an app synchronously from an event loop thread of its own, so
whatever the app calls (the fakes, a real service behind it) runs on another loop, in a
background thread.

The fakes play eda, cardstorage, transactions, cashback and iiko-integration's app API
at once: every order exists (its bill is ``BILL``), every card is the guest's, every
write succeeds. Each call is counted by name, and the writes are told apart, so a test
can check that a refused request created nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import schemathesis
from aiohttp import web
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.component.iiko_integration import eda_order
from tests.support.component.payments_eda import (
    USER,
    card_body,
    invoice_body,
    ledger_body,
    operation_body,
    order_body,
    payment_body,
    public_card,
    signature,
    started_body,
)
from tests.support.mockserver import json_response
from tests.support.tickets import ticket_headers

BILL = "100"  # the amount of the PayRequest example in payments-eda's schema

# The calls that would change something downstream: an order, a payment's state, a hold.
WRITES = frozenset(
    {
        "create_order",
        "start",
        "begin-rollback",
        "fail",
        "complete",
        "ensure_invoice",
        "hold",
        "accrue",
    }
)

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)


@contextmanager
def background_loop() -> Iterator[BackgroundLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield BackgroundLoop(loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@dataclass
class Fakes:
    base_url: str = ""
    hits: Counter[str] = field(default_factory=Counter)

    def writes(self) -> int:
        return sum(self.hits[name] for name in WRITES)


def _fake_app(fakes: Fakes) -> web.Application:
    routes = web.RouteTableDef()

    def hit(name: str) -> None:
        fakes.hits[name] += 1

    @routes.post("/v1/orders")
    async def create_order(request: web.Request) -> web.Response:
        hit("create_order")
        return json_response({"order": eda_order(await request.json()), "outcome": "created"})

    @routes.get("/v1/orders/{order_id}")
    async def get_order(request: web.Request) -> web.Response:
        hit("get_order")
        return json_response(order_body(order_id=request.match_info["order_id"], amount=BILL))

    @routes.get("/v1/orders/{order_id}/payments")
    async def ledger(request: web.Request) -> web.Response:
        hit("ledger")
        return json_response(ledger_body(order_id=request.match_info["order_id"], total=BILL))

    @routes.post("/v1/orders/{order_id}/payments/{action}")
    async def payment(request: web.Request) -> web.Response:
        """Every start admitted as a new payment of what it asked; every move done."""
        action = request.match_info["action"]
        hit(action)
        body = await request.json()
        order_id = request.match_info["order_id"]
        if action != "start":
            state = {"begin-rollback": "rolling_back", "fail": "released"}.get(action, "paid")
            payment = payment_body(body["payment_id"], state, BILL)
            return json_response(ledger_body(payment, order_id=order_id, total=BILL))
        payment = payment_body(body["payment_id"], amount=body["amount"], tip=body["tip"])
        ledger = ledger_body(payment, order_id=order_id, total=BILL)
        return json_response(started_body(ledger, body["payment_id"], replayed=False))

    @routes.get("/v1/payment-methods/{method_id}")
    async def get_card(request: web.Request) -> web.Response:
        hit("get_card")
        return json_response(
            card_body(request.match_info["method_id"], user_id=request.query["user_id"])
        )

    @routes.post("/v1/invoices/{invoice_id}/operations")
    async def operations(request: web.Request) -> web.Response:
        hit("hold")
        body = await request.json()
        return json_response(operation_body(body["operation_id"]))

    def canned(name: str, body: Any, status: int = 200) -> Callable[..., Awaitable[web.Response]]:
        async def answer(_request: web.Request) -> web.Response:
            hit(name)
            return json_response(body, status)

        return answer

    # The routes whose answer does not depend on the request.
    for method, path, name, body in [
        ("POST", "/v1/orders/statuses", "statuses", {"orders": []}),
        ("GET", "/v1/orders/payments/overdue", "overdue", {"payments": [], "next": None}),
        ("GET", "/v1/orders/{order_id}/payments/quote", "quote", {"amount": BILL, "left": BILL}),
        ("GET", "/v1/payment-methods", "list_cards", {"payment_methods": [public_card()]}),
        ("PUT", "/v1/invoices/{invoice_id}", "ensure_invoice", invoice_body()),
        ("GET", "/availability", "availability", {"is_available": True}),
        ("GET", "/restaurants", "restaurants", {"restaurants": []}),
    ]:
        routes.route(method, path)(canned(name, body))
    missing = {"code": "invoice_not_found", "message": "none"}
    routes.get("/v1/invoices/{invoice_id}")(canned("get_invoice", missing, 404))

    app = web.Application()
    app.add_routes(routes)
    return app


@contextmanager
def running_fakes(background: BackgroundLoop) -> Iterator[Fakes]:
    """The fakes, served on a free local port by ``background``'s loop."""
    fakes = Fakes()
    runner = web.AppRunner(_fake_app(fakes), access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fakes.base_url = f"http://127.0.0.1:{port}"

    background.run(start())
    try:
        yield fakes
    finally:
        background.run(runner.cleanup())


def _short_waits(case: Any) -> None:
    """A long-poll on a status nobody changes lasts its whole wait: kept short here (a
    value schema-valid or not stays so)."""
    query = case.query
    if isinstance(query, dict) and isinstance(query.get("wait_ms"), int | str):
        wait = query["wait_ms"]
        if isinstance(wait, int) or wait.isdigit():
            query["wait_ms"] = min(int(wait), 50)


def sign_payer_case(case: Any) -> None:
    """Sign the order id of a valid case, and act as a signed-in guest unless told otherwise."""
    if case.headers is None:
        case.headers = {}
    case.headers.setdefault("X-Yandex-UID", USER)
    # As api-proxy, the one caller whose user headers payments-eda takes.
    case.headers.update(ticket_headers("api-proxy", to="payments-eda"))
    _short_waits(case)
    meta = case.meta
    if meta is not None and meta.generation.mode is not GenerationMode.POSITIVE:
        return  # an invalid case keeps its flaw (a bad signature there answers 404 anyway)
    query = case.query
    if isinstance(query, dict) and isinstance(query.get("order_id"), str):
        query["hmac"] = signature(query["order_id"])

    body = case.body
    if isinstance(body, dict) and isinstance(body.get("order_id"), str):
        body["hmac"] = signature(body["order_id"])


# What a schemathesis test of a service does not check: that every schema-valid request is
# accepted. Schema-valid is not business-valid (a bill that changed, a restaurant the key is
# not for, an amount with more digits than its currency has): those are 4xx by contract.
EXCLUDED_CHECKS = [positive_data_acceptance]


def schema_settings(max_examples: int) -> settings:
    """A schemathesis test's hypothesis settings: ``max_examples`` cases, no deadline, and
    slow or much-filtered generation allowed."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def with_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis' lazy loader reads ``node._nodeid``, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def lazy_schema(request: pytest.FixtureRequest, app: FastAPI) -> Any:
    """``asgi_schema`` for a fixture that ``schemathesis.pytest.from_fixture`` loads."""
    with_node_id(request)
    return asgi_schema(app)


def asgi_schema(app: FastAPI) -> Any:
    """The app's OpenAPI document for schemathesis, its calls made to the app in process.

    Taken from the app, not over GET /openapi.json: a public service serves that only to
    ``http.internal_networks``, and schemathesis' ASGI client has no address ("testclient").
    """
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    schema.location = "/openapi.json"
    return schema
