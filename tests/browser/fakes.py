"""Deterministic stand-ins for payments-eda and iiko-integration, for the page's every state.

They speak the contracts of SPEC 4.2 and 4.3 and keep just enough state: an
order moves WAITING -> PAYMENT_IN_PROGRESS on a pay call, and after a few
status polls to PAYED (card-ok) or back to WAITING with the last attempt
DECLINED (card-declined). They run on their own event loop in a thread, as the
browser and the server under test run in others.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.mockserver import MockServer, error_response, json_response
from tests.support.orders import saved_cards

CARDS = saved_cards()
OUTCOMES = {"card-ok": "PAYED", "card-declined": "DECLINED"}
ELEMENTS = [
    {"name": "Borscht", "amount": "450"},
    {"name": "Pelmeni", "amount": "620.50"},
    {"name": "Kompot", "amount": "180"},
    {"name": "Discount", "amount": "-50.50"},
]
RESTAURANTS = [
    {"id": "rest-1", "name": "Pushkin Café", "cashback": "30%", "address": "Tverskoy Blvd 26A"},
    {"id": "rest-4", "name": "Varenichnaya No. 1", "cashback": "10%", "address": "Arbat 29"},
]
_ids = itertools.count(1)


@dataclass
class FakeOrder:
    order_id: str
    hmac: str
    status: str = "WAITING"  # eda's: WAITING, PAYMENT_IN_PROGRESS, PAYED, CANCELED
    amount: str = "1200"
    last_failed: bool = False
    pending: str | None = None
    polls_left: int = 0
    pay_cards: list[str] = field(default_factory=list)
    poll_times: list[float] = field(default_factory=list)


class FakeDownstreams:
    def __init__(self, *, polling_delay: str = "0.3", polls_to_settle: int = 2) -> None:
        self.server = MockServer()
        self.orders: dict[str, FakeOrder] = {}
        self.polling_delay = polling_delay
        self.polls_to_settle = polls_to_settle
        self.pay_delay = 0.0
        self.preorder_status = 200
        self.headers_seen: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.preorder = self.server.handler("/4.0/payments/v1/preorder", "GET")(self._preorder)
        self.pay = self.server.handler("/4.0/payments/v1/orders", "POST")(self._pay)
        self.status = self.server.handler("/4.0/payments/v1/orders", "GET")(self._status)
        # A bill nobody splits: the page offers splitting and pays the whole bill as before.
        self.split = self.server.handler("/4.0/payments/v1/orders/split", "GET")(self._split)
        self.server.handler("/availability", "GET")(self._availability)
        self.server.handler("/restaurants", "GET")(self._restaurants)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def new_order(self, *, status: str = "WAITING") -> FakeOrder:
        order_id = f"ord-{next(_ids):04d}"
        signature = hashlib.sha256(order_id.encode()).hexdigest()
        order = FakeOrder(order_id=order_id, hmac=signature, status=status)
        self.orders[order_id] = order
        return order

    def _order(
        self, request: web.Request, order_id: str | None, signature: str | None
    ) -> FakeOrder | None:
        order = self.orders.get(order_id or "")
        if order is None or order.hmac != signature:
            return None
        return order

    def _bill(self, order: FakeOrder) -> dict[str, Any]:
        return {"currency": "RUB", "amount": order.amount, "elements": ELEMENTS}

    async def _preorder(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        if self.preorder_status != 200:
            return error_response(self.preorder_status, "payments_eda_unavailable")
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        signed_in = "X-Yandex-UID" in request.headers
        return json_response(
            {
                "order_id": order.order_id,
                "status": order.status,
                "restaurant": {"id": "rest-1", "name": "Pushkin Café"},
                "bill": self._bill(order),
                "payment_methods": CARDS if signed_in else [],
                "cashback": {"rate": "30%", "amount": "360", "currency": "RUB"},
            }
        )

    async def _pay(self, request: web.Request) -> web.Response:
        if "X-Yandex-UID" not in request.headers:
            return error_response(401, "unauthorized", "Sign in to pay")
        body = await request.json()
        order = self._order(request, body.get("order_id"), body.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        if self.pay_delay:
            await asyncio.sleep(self.pay_delay)
        if order.status == "PAYED":
            return error_response(409, "already_paid", "The order is already paid")
        if order.status == "CANCELED":
            return error_response(409, "order_closed", "The order is closed")
        if order.status == "PAYMENT_IN_PROGRESS":
            return json_response({"status": "WAITING", "message": "in progress"})
        card = body["payment_method"]["id"]
        order.pay_cards.append(card)
        order.status = "PAYMENT_IN_PROGRESS"
        order.pending = OUTCOMES.get(card, "DECLINED")
        order.polls_left = self.polls_to_settle
        order.last_failed = False
        return json_response({"status": "WAITING", "message": "The payment is being processed"})

    async def _status(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        order.poll_times.append(time.monotonic())
        if order.status == "PAYMENT_IN_PROGRESS":
            order.polls_left -= 1
            if order.polls_left <= 0:
                if order.pending == "PAYED":
                    order.status = "PAYED"
                else:
                    order.status, order.last_failed = "WAITING", True
        if order.status == "PAYED":
            status = "PAYED"
        elif order.status == "CANCELED" or order.last_failed:
            status = "DECLINED"
        else:
            status = "WAITING"
        answer = json_response({"status": status, "message": status.lower(), "currency": "RUB"})
        answer.headers["X-Polling-Delay"] = self.polling_delay
        return answer

    async def _split(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        return json_response(
            {
                "order_id": order.order_id,
                "status": order.status,
                "currency": "RUB",
                "total": order.amount,
                "paid": "0",
                "held": "0",
                "left": order.amount,
                "taken_items": [],
                "tip_percents": [5, 10, 15],
                "shares": [],
            }
        )

    async def _availability(self, request: web.Request) -> web.Response:
        return json_response({"is_available": request.query.get("uuid") == "demo-user"})

    async def _restaurants(self, request: web.Request) -> web.Response:
        listed = RESTAURANTS if request.query.get("uuid") == "demo-user" else []
        return json_response({"restaurants": listed})


@contextmanager
def running_fakes() -> Iterator[FakeDownstreams]:
    fakes = FakeDownstreams()
    fakes.start()
    try:
        yield fakes
    finally:
        fakes.stop()
    assert not fakes.server.unmocked, fakes.server.unmocked
