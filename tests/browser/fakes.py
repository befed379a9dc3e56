"""Deterministic stand-ins for payments-eda and iiko-integration, for the page's every state.

They speak the contracts of SPEC 4.2 and 4.3 and keep just enough state: an
order moves WAITING -> PAYMENT_IN_PROGRESS on a pay call, and after a few
status polls to PAYED (card-ok) or back to WAITING with the last attempt
DECLINED (card-declined). They run on their own event loop in a thread, as the
browser and the server under test run in others.

A split bill (issue 12) is kept as what other guests paid or hold and the items they
took; a share is quoted and paid as payments-eda does (a stale price is refused with
``share_price_changed``) and settles like a whole-bill payment, by the card.

The guest's idempotency token (issue 18) is honoured as payments-eda's contract says: a
share without one is 400; a pay repeated with the same token and body is the same payment
(its id ``payment_id_for(order, token)``, its current status), never a second one; the
same token with another body is 409 ``idempotency_token_reused``.
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
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER, payment_id_for
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
TIP_PERCENTS = [5, 10, 15]
CENT = Decimal("0.01")
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
    poll_waits: list[str | None] = field(default_factory=list)
    # A split bill: what the other guests paid or hold, and the items they took.
    paid: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    taken: list[int] = field(default_factory=list)
    shares: dict[str, FakeShare] = field(default_factory=dict)
    # token -> (the body it was first sent with, the payment it made)
    tokens: dict[str, tuple[Any, str]] = field(default_factory=dict)
    # The whole-bill payment made last (older ones ended DECLINED: one at a time).
    whole_payment: str | None = None
    # What refunds gave back of it (issue 19); None while none did.
    refunded: str | None = None

    def whole_status(self, payment_id: str) -> str:
        """A whole-bill payment's status, as the guest sees it."""
        if payment_id != self.whole_payment:
            return "DECLINED"
        if self.status == "PAYED":
            return "PAYED"
        if self.status == "CANCELED" or self.last_failed:
            return "DECLINED"
        return "WAITING"

    @property
    def left(self) -> Decimal:
        return Decimal(self.amount) - self.paid - self.held


@dataclass
class FakeShare:
    amount: Decimal
    tip: Decimal
    items: list[int]
    outcome: str
    polls_left: int
    status: str = "WAITING"


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
        share = "/4.0/payments/v1/orders/share"
        self.quote = self.server.handler(f"{share}/quote", "GET")(self._quote)
        self.pay_share = self.server.handler(share, "POST")(self._pay_share)
        self.server.handler(share, "GET")(self._share_status)
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
        token = request.headers.get(IDEMPOTENCY_TOKEN_HEADER)
        repeated = self._repeated(order, token, body)
        if isinstance(repeated, web.Response):
            return repeated
        if repeated is not None:
            status = order.whole_status(repeated)
            return json_response({"status": status, "message": status, "payment_id": repeated})
        if order.status == "PAYED":
            return error_response(409, "already_paid", "The order is already paid")
        if order.status == "CANCELED":
            return error_response(409, "order_closed", "The order is closed")
        if order.status == "PAYMENT_IN_PROGRESS":
            return json_response({"status": "WAITING", "message": "in progress"})
        if order.paid or order.held:
            return error_response(409, "split_under_way", "Guests are splitting this bill")
        card = body["payment_method"]["id"]
        order.pay_cards.append(card)
        order.status = "PAYMENT_IN_PROGRESS"
        order.pending = OUTCOMES.get(card, "DECLINED")
        order.polls_left = self.polls_to_settle
        order.last_failed = False
        payment_id = payment_id_for(order.order_id, token) if token else f"pay-{next(_ids):04d}"
        order.whole_payment = payment_id
        if token:
            order.tokens[token] = (body, payment_id)
        return json_response(
            {
                "status": "WAITING",
                "message": "The payment is being processed",
                "payment_id": payment_id if token else None,
            }
        )

    @staticmethod
    def _repeated(order: FakeOrder, token: str | None, body: Any) -> str | web.Response | None:
        """The payment ``token`` made already (None: a new one), or the refusal of a token
        sent again with another body."""
        if token is None or token not in order.tokens:
            return None
        first_body, payment_id = order.tokens[token]
        if first_body != body:
            return error_response(409, "idempotency_token_reused", "Another pay had this token")
        return payment_id

    async def _status(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        order.poll_times.append(time.monotonic())
        order.poll_waits.append(request.query.get("wait_ms"))
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
        answer = json_response(
            {
                "status": status,
                "message": status.lower(),
                "currency": "RUB",
                "payment_id": order.whole_payment,
                "refunded": order.refunded,
            }
        )
        answer.headers["X-Polling-Delay"] = self.polling_delay
        return answer

    async def _split(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        shares = [
            {
                "amount": f"{amount:.2f}",
                "items": order.taken if state == "paid" else [],
                "state": state,
            }
            for amount, state in ((order.paid, "paid"), (order.held, "holding"))
            if amount > 0
        ]
        return json_response(
            {
                "order_id": order.order_id,
                "status": order.status,
                "currency": "RUB",
                "total": f"{Decimal(order.amount):.2f}",
                "paid": f"{order.paid:.2f}",
                "held": f"{order.held:.2f}",
                "left": f"{order.left:.2f}",
                "taken_items": order.taken,
                "tip_percents": TIP_PERCENTS,
                "shares": shares,
            }
        )

    def _price(self, order: FakeOrder, choice: dict[str, Any]) -> Decimal | web.Response:
        """What a share costs now, or payments-eda's refusal."""
        left = order.left
        if left <= 0:
            return error_response(409, "nothing_left", "Nothing is left to pay on this bill")
        way = choice.get("way")
        if way == "equal":
            share = (Decimal(order.amount) / int(choice["parts"])).quantize(CENT, ROUND_DOWN)
            return min(share, left)
        if way == "items":
            items = [int(i) for i in choice["items"]]
            if set(items) & set(order.taken):
                return error_response(409, "item_taken", "Another guest has this item")
            return min(sum((Decimal(ELEMENTS[i]["amount"]) for i in items), Decimal(0)), left)
        if way == "amount":
            amount = Decimal(choice["amount"])
            if amount > left:
                return error_response(409, "amount_exceeds_left", "More than what is left")
            return amount
        return left

    async def _quote(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        choice = {
            "way": request.query.get("way"),
            "parts": request.query.get("parts"),
            "items": request.query.getall("items", []),
            "amount": request.query.get("amount"),
        }
        price = self._price(order, choice)
        if isinstance(price, web.Response):
            return price
        return json_response({"amount": f"{price:.2f}", "left": f"{order.left:.2f}"})

    async def _pay_share(self, request: web.Request) -> web.Response:
        if "X-Yandex-UID" not in request.headers:
            return error_response(401, "unauthorized", "Sign in to pay")
        token = request.headers.get(IDEMPOTENCY_TOKEN_HEADER)
        if token is None:
            return error_response(400, "idempotency_token_required", "Send a token")
        body = await request.json()
        order = self._order(request, body.get("order_id"), body.get("hmac"))
        if order is None:
            return error_response(404, "order_not_found", "Order not found")
        repeated = self._repeated(order, token, body)
        if isinstance(repeated, web.Response):
            return repeated
        if repeated is not None:
            status = order.shares[repeated].status
            return json_response(
                {"status": status, "message": status, "payment_id": repeated, "share_id": repeated}
            )
        price = self._price(order, body["share"])
        if isinstance(price, web.Response):
            return price
        if Decimal(body["amount"]) != price:
            return error_response(409, "share_price_changed", "Another guest paid meanwhile")
        tip = Decimal(0)
        if body.get("tip_percent") is not None:
            if body["tip_percent"] not in TIP_PERCENTS:
                return error_response(400, "tip_not_offered", "That tip is not offered")
            tip = (price * body["tip_percent"] / 100).quantize(CENT, ROUND_HALF_UP)
        elif body.get("tip") is not None:
            tip = Decimal(body["tip"])
            if tip > price:
                return error_response(400, "invalid_tip", "The tip is not valid")
        card = body["payment_method"]["id"]
        order.pay_cards.append(card)
        share_id = payment_id_for(order.order_id, token)
        order.tokens[token] = (body, share_id)
        order.shares[share_id] = FakeShare(
            amount=price,
            tip=tip,
            items=[int(i) for i in body["share"].get("items", [])],
            outcome=OUTCOMES.get(card, "DECLINED"),
            polls_left=self.polls_to_settle,
        )
        return json_response(
            {
                "status": "WAITING",
                "message": "in progress",
                "payment_id": share_id,
                "share_id": share_id,
            }
        )

    async def _share_status(self, request: web.Request) -> web.Response:
        order = self._order(request, request.query.get("order_id"), request.query.get("hmac"))
        share_id = request.query.get("share_id", "")
        share = order.shares.get(share_id) if order else None
        if order is None or share is None:
            return error_response(404, "share_not_found", "No such share")
        if share.status == "WAITING":
            share.polls_left -= 1
            if share.polls_left <= 0:
                share.status = share.outcome
                if share.status == "PAYED":
                    order.paid += share.amount
                    order.taken.extend(share.items)
                    if order.left <= 0:
                        order.status = "PAYED"
        answer = json_response(
            {"status": share.status, "message": share.status.lower(), "share_id": share_id}
        )
        answer.headers["X-Polling-Delay"] = self.polling_delay
        return answer

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
