from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from aiohttp import web

from qrpay.kernel import deeplink
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.payments_eda.service import PaymentsService
from qrpay.payments_eda.tasks import Handlers
from tests.support.mockserver import MockedRoute, MockServer, error_response, json_response
from tests.support.services import (
    dev_config,
    dev_secdist,
    point_services_at,
)

ORDER_ID = "ord1"


CLIENT_ID = "rest-1"  # 30% cashback, capped at 3000


USER = "user-1"


PAYMENT = "p1"


# A guest's X-Idempotency-Token (8..128 of [A-Za-z0-9_-]).
TOKEN = "tap-0001"


BASE = "/4.0/payments/v1"


TIMEOUT_MS = 400


def signature(order_id: str = ORDER_ID, client_id: str = CLIENT_ID) -> str:
    return deeplink.sign(dev_secdist().hmac_keys[0], order_id, client_id)


def order_body(
    status: str = "WAITING",
    *,
    amount: str = "1000",
    order_id: str = ORDER_ID,
    client_id: str = CLIENT_ID,
    currency: str = "RUB",
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "client_id": client_id,
        "internal_order_id": "iiko-42",
        "status": status,
        "bill": {
            "currency": currency,
            "amount": amount,
            "elements": [{"name": "Borscht", "amount": amount}],
        },
        "bill_version": 1,
        "created_at": "2026-01-01T12:00:00Z",
        "updated_at": "2026-01-01T12:00:00Z",
    }


LIVE = ("holding", "clearing", "rolling_back")


def payment_body(
    payment_id: str = PAYMENT,
    state: str = "holding",
    amount: str = "1000.00",
    *,
    invoice_id: str | None = None,
    tip: str = "0.00",
    items: list[int] | None = None,
    paid_seq: int | None = None,
    minute: int = 0,
    updated_minute: int | None = None,
) -> dict[str, Any]:
    """One payment as eda's ledger shows it; its invoice is its own (since issue 18)."""
    if paid_seq is None and state == "paid":
        paid_seq = 1
    return {
        "payment_id": payment_id,
        "invoice_id": invoice_id or payment_id,
        "amount": amount,
        "tip": tip,
        "items": items or [],
        "state": state,
        "paid_seq": paid_seq,
        "created_at": f"2026-01-01T12:{minute:02d}:00Z",
        "updated_at": f"2026-01-01T12:{updated_minute or minute:02d}:00Z",
    }


def ledger_body(
    *payments: dict[str, Any],
    total: str = "1000.00",
    status: str | None = None,
    order_id: str = ORDER_ID,
) -> dict[str, Any]:
    """eda's ledger of a bill of ``total`` with ``payments``; the order's status derived
    from them as eda derives it, unless given (an order closed or canceled)."""
    whole = Decimal(total)
    paid = sum((Decimal(p["amount"]) for p in payments if p["state"] == "paid"), Decimal(0))
    held = sum((Decimal(p["amount"]) for p in payments if p["state"] in LIVE), Decimal(0))
    if status is None:
        if paid >= whole:
            status = "PAYED"
        elif held and paid + held >= whole:
            status = "PAYMENT_IN_PROGRESS"
        else:
            status = "WAITING"
    taken = sorted({i for p in payments if p["state"] in (*LIVE, "paid") for i in p["items"]})
    return {
        "order_id": order_id,
        "client_id": CLIENT_ID,
        "status": status,
        "currency": "RUB",
        "total": total,
        "paid": f"{paid:.2f}",
        "held": f"{held:.2f}",
        "left": f"{max(whole - paid - held, Decimal(0)):.2f}",
        "tips": "0.00",
        "taken_items": taken,
        "payments": list(payments),
    }


def started_body(ledger: dict[str, Any], payment_id: str, *, replayed: bool) -> dict[str, Any]:
    return {**ledger, "payment_id": payment_id, "replayed": replayed}


def card_body(
    card_id: str = "card-ok", *, user_id: str = USER, available: bool = True
) -> dict[str, Any]:
    return {
        "id": card_id,
        "type": "card",
        "system": "visa",
        "mask": "•••• 4242",
        "expiry": "12/30",
        "available": available,
        "user_id": user_id,
        "token": f"sandbox-ok-{card_id}",
    }


def public_card(card_id: str = "card-ok") -> dict[str, Any]:
    body = card_body(card_id)
    del body["user_id"], body["token"]
    return body


def operation_fields(op_id: str, kind: str, status: str, target: str | None) -> dict[str, Any]:
    """What transactions says of an operation (of 1000 RUB) in a listing and in a callback."""
    return {
        "operation_id": op_id,
        "kind": kind,
        "status": status,
        "amount": "1000.00",
        "currency": "RUB",
        "target": target,
    }


def operation_body(
    op_id: str = PAYMENT,
    kind: str = "hold",
    status: str = "pending",
    *,
    target: str | None = None,
    minute: int = 0,
) -> dict[str, Any]:
    return {
        **operation_fields(op_id, kind, status, target),
        "payment_method_id": "card-ok",
        "reason": None,
        "created_at": f"2026-01-01T12:{minute:02d}:00Z",
        "finished_at": None,
    }


def invoice_body(
    operations: list[dict[str, Any]] | None = None,
    user_id: str = USER,
    invoice_id: str = PAYMENT,
) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "owner": "payments-eda",
        "order_id": ORDER_ID,
        "user_id": user_id,
        "currency": "RUB",
        "callback": {
            "queue": "payments_eda_transactions",
            "task": "payments_eda.transaction_callback",
        },
        "operations": operations or [],
        "held": "0",
        "cleared": "0",
        "released": "0",
    }


def callback(
    op_id: str = PAYMENT,
    kind: str = "hold",
    status: str = "succeeded",
    target: str | None = None,
    *,
    invoice_id: str = PAYMENT,
) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "order_id": ORDER_ID,
        **operation_fields(op_id, kind, status, target),
        "reason": None if status == "succeeded" else "card_declined",
    }


def pay_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "restaurant",
        "order_id": ORDER_ID,
        "hmac": signature(),
        "payment_method": {"type": "card", "id": "card-ok"},
        "amount": "1000",
    }
    body.update(overrides)
    return body


# --- eda's payment routes, kept as eda keeps them --------------------------------------------

# eda's moves of a payment: from which states each is allowed (a move to where the payment
# already is answers it as it stands), and eda's refusal otherwise.
_MOVES = {
    "begin-rollback": ("rolling_back", {"holding"}),
    "fail": ("released", {"holding", "rolling_back"}),
    "complete": ("paid", {"holding", "clearing", "rolling_back"}),
}
_REFUSALS = {"paid": "already_paid", "released": "payment_released", "clearing": "payment_clearing"}


@dataclass
class FakeEda:
    """eda's order and payment routes for ``ORDER_ID``, keeping its payments as eda does:
    a start admits a payment holding (its invoice its own id) or, for a payment id it
    knows, answers that payment as it stands (``replayed``), 409 idempotency_token_reused
    when the request behind it differs; each move follows eda's table. Pricing and items
    are eda's own tests' business: ``refuse`` makes a new start answer that error."""

    mock: MockServer
    total: str = "1000.00"
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    hashes: dict[str, str | None] = field(default_factory=dict)
    refuse: tuple[int, str] | None = None
    closed: str | None = None  # the order's status once closed or canceled

    def install(self) -> FakeEda:
        self.order_route = self.mock.handler(f"/v1/orders/{ORDER_ID}", "GET")(self._order)
        self.ledger_route = self.mock.handler(f"/v1/orders/{ORDER_ID}/payments", "GET")(
            lambda _r: self.ledger()
        )
        self.start = self.mock.handler(f"/v1/orders/{ORDER_ID}/payments/start")(self._start)
        self.moves = {
            move: self.mock.handler(f"/v1/orders/{ORDER_ID}/payments/{move}")(self._mover(move))
            for move in _MOVES
        }
        return self

    def add(self, payment: dict[str, Any], request_hash: str | None = None) -> None:
        self.payments[payment["payment_id"]] = payment
        self.hashes[payment["payment_id"]] = request_hash

    def ledger(self) -> dict[str, Any]:
        return ledger_body(*self.payments.values(), total=self.total, status=self.closed)

    def state(self, payment_id: str) -> str:
        return str(self.payments[payment_id]["state"])

    def _order(self, _request: web.Request) -> dict[str, Any]:
        return order_body(self.ledger()["status"], amount=self.total)

    async def _start(self, request: web.Request) -> web.Response:
        body = await request.json()
        payment_id = body["payment_id"]
        earlier = self.payments.get(payment_id)
        if earlier is not None:
            same_amount = Decimal(earlier["amount"]) == Decimal(body["amount"])
            if self.hashes[payment_id] != body.get("request_hash") or not same_amount:
                return error_response(409, "idempotency_token_reused")
            return json_response(started_body(self.ledger(), payment_id, replayed=True))
        if self.refuse is not None:
            return error_response(*self.refuse)
        payment = payment_body(
            payment_id,
            amount=body["amount"],
            tip=body["tip"],
            items=list(body["choice"]["items"]),
            minute=len(self.payments),
        )
        self.add(payment, body.get("request_hash"))
        return json_response(started_body(self.ledger(), payment_id, replayed=False))

    def _mover(self, move: str) -> Any:
        to, allowed = _MOVES[move]

        async def handler(request: web.Request) -> web.Response:
            payment_id = (await request.json())["payment_id"]
            payment = self.payments.get(payment_id)
            if payment is None:
                return error_response(404, "payment_not_found")
            if payment["state"] != to:
                if payment["state"] not in allowed:
                    code = _REFUSALS.get(payment["state"], "payment_rolling_back")
                    return error_response(409, code)
                seq = [p["paid_seq"] or 0 for p in self.payments.values()]
                payment["state"] = to
                payment["paid_seq"] = max(seq) + 1 if to == "paid" else None
            return json_response(self.ledger())

        return handler


def share_body(amount: str = "400", **overrides: Any) -> dict[str, Any]:
    """A guest's share of ``amount`` (the amount of their choosing), as they were quoted it."""
    return pay_body(amount=amount, share={"way": "amount", "amount": amount}, **overrides)


@dataclass
class Env:
    ctx: ServiceContext
    client: httpx.AsyncClient
    service: PaymentsService
    handlers: Handlers
    queue: TaskQueue
    mock: MockServer

    # --- downstream mocks ---
    def order(self, status: str = "WAITING", **kw: Any) -> MockedRoute:
        return self.mock.json_handler(
            f"/v1/orders/{ORDER_ID}", order_body(status, **kw), method="GET"
        )

    def unknown_order(self, read: str = "") -> MockedRoute:
        """eda knows no such order: its GET /v1/orders/{id}{read} is a 404."""
        body = {"code": "order_not_found", "message": "no such order"}
        return self.mock.json_handler(f"/v1/orders/{ORDER_ID}{read}", body, 404, method="GET")

    def eda(self, *payments: dict[str, Any], total: str = "1000.00") -> FakeEda:
        """eda's order and its payments, kept as eda keeps them (``FakeEda``)."""
        fake = FakeEda(self.mock, total=total).install()
        for payment in payments:
            fake.add(payment)
        return fake

    def ledger(self, *payments: dict[str, Any], **kw: Any) -> MockedRoute:
        return self.mock.json_handler(
            f"/v1/orders/{ORDER_ID}/payments", ledger_body(*payments, **kw), method="GET"
        )

    def eda_write(self, move: str, body: Any, status: int = 200) -> MockedRoute:
        """eda's POST /v1/orders/{id}/payments/{move}: start, begin-rollback, fail, complete."""
        return self.mock.json_handler(f"/v1/orders/{ORDER_ID}/payments/{move}", body, status)

    def card(self, **kw: Any) -> MockedRoute:
        return self.mock.json_handler("/v1/payment-methods/card-ok", card_body(**kw), method="GET")

    def invoice(self, body: Any, status: int = 200, invoice_id: str = PAYMENT) -> MockedRoute:
        return self.mock.json_handler(f"/v1/invoices/{invoice_id}", body, status, method="GET")

    def operations(
        self, body: Any = None, status: int = 200, invoice_id: str = "{invoice}"
    ) -> MockedRoute:
        """transactions' POST /v1/invoices/{invoice}/operations (of any invoice by default:
        a payment's invoice is its own id, a uuid without a token); answers the operation
        pending unless told otherwise."""

        async def answer(request: web.Request) -> web.Response:
            if body is not None:
                return json_response(body, status)
            sent = await request.json()
            return json_response(operation_body(sent["operation_id"], sent["kind"]), status)

        return self.mock.handler(f"/v1/invoices/{invoice_id}/operations")(answer)

    def void(
        self, body: Any, status: int = 200, hold: str = PAYMENT, invoice_id: str | None = None
    ) -> MockedRoute:
        path = f"/v1/invoices/{invoice_id or hold}/operations/{hold}/void"
        return self.mock.json_handler(path, body, status)

    def overdue(self, *pages: list[dict[str, Any]]) -> MockedRoute:
        """eda's pages of payments to check, the sweep's ``after`` naming the page to serve."""

        def answer(request: web.Request) -> dict[str, Any]:
            at = int(request.query.get("after", "0"))
            last = at + 1 >= len(pages)
            return {"payments": pages[at] if pages else [], "next": None if last else str(at + 1)}

        return self.mock.handler("/v1/orders/payments/overdue", "GET")(answer)

    def jobs(self, task: str | None = None) -> list[dict[str, Any]]:
        rows = list(self.queue.app.connector.jobs.values())  # type: ignore[attr-defined]
        return [r for r in rows if task is None or r["task_name"] == task]

    def metric(self, name: str, **labels: str) -> float:
        value = self.ctx.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


def config_for(mock: MockServer, *, timeouts: dict[str, int] | None = None, **extra: Any) -> Any:
    """Every downstream at ``mock``, answering within ``TIMEOUT_MS`` unless ``timeouts``
    names another for a service."""
    config = point_services_at(
        dev_config(**extra),
        mock.base_url,
        "eda",
        "cardstorage",
        "transactions",
        "cashback",
        timeout_ms=TIMEOUT_MS,
    )
    for name, timeout_ms in (timeouts or {}).items():
        config = point_services_at(config, mock.base_url, name, timeout_ms=timeout_ms)
    return config


def to_check(
    payment_id: str = PAYMENT, state: str = "holding", invoice_id: str | None = None
) -> dict[str, Any]:
    """A payment on a page of eda's payments to check (the sweep's)."""
    return {
        "order_id": ORDER_ID,
        "payment_id": payment_id,
        "invoice_id": invoice_id or payment_id,
        "state": state,
    }
