"""A fake payments-eda (and cashback balance) for the guest's unit tests: scripted answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.orders import bill, saved_cards

ORDER_ID = "0123456789abcdef0123456789abcdef"
HMAC = "ab" * 32
LINK = f"http://127.0.0.1:8080/go-pay/orders?order_id={ORDER_ID}&hmac={HMAC}"


def preorder_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": ORDER_ID,
        "restaurant": {"client_id": "rest-1", "name": "Pushkin Café"},
        "bill": bill("1100.00", ("Borscht", "450.00"), ("Pelmeni", "650.00")),
        "payment_methods": saved_cards(),
        "cashback": {"rate": "30%", "amount": "330", "currency": "RUB"},
        "bill_version": 1,
    }
    body.update(overrides)
    return body


@dataclass
class FakePayments:
    """Each pay starts an attempt; status answers follow ``script[card]`` and then stay final."""

    scripts: dict[str, list[str]] = field(
        default_factory=lambda: {
            "card-ok": ["WAITING", "WAITING", "PAYED"],
            "card-declined": ["WAITING", "DECLINED"],
        }
    )
    polling_delay: str = "0.01"
    preorder: dict[str, Any] = field(default_factory=preorder_body)
    preorder_error: tuple[int, dict[str, Any]] | None = None
    pay_error: tuple[int, dict[str, Any]] | None = None
    # Answers 503 to this many status polls before answering normally.
    status_outages: int = 0
    # Answers 503 to this many pays before answering normally (their outcome unknown).
    pay_outages: int = 0
    balance: dict[str, Any] | None = field(
        default_factory=lambda: {
            "user_id": "demo-user",
            "balances": [{"currency": "RUB", "amount": "330"}],
        }
    )
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    _pending: list[str] = field(default_factory=list)
    _last: str = "WAITING"

    def calls(self, method: str, path: str) -> list[tuple[dict[str, str], Any]]:
        return [(h, b) for m, p, h, b in self.requests if m == method and p == path]

    async def _record(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else dict(request.query)
        self.requests.append((request.method, request.path, dict(request.headers), body))
        return body

    async def get_preorder(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.preorder_error is not None:
            return web.json_response(self.preorder_error[1], status=self.preorder_error[0])
        return web.json_response(self.preorder)

    async def post_order(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if self.pay_outages > 0:
            self.pay_outages -= 1
            return web.json_response({"code": "eda_unavailable", "message": "down"}, status=503)
        if self.pay_error is not None:
            return web.json_response(self.pay_error[1], status=self.pay_error[0])
        self._pending = list(self.scripts[body["payment_method"]["id"]])
        self._last = "WAITING"
        return web.json_response(
            {"status": "WAITING", "message": "Waiting for the bank"},
            headers={"X-Polling-Delay": self.polling_delay},
        )

    async def get_order(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.status_outages > 0:
            self.status_outages -= 1
            return web.json_response({"code": "eda_unavailable", "message": "down"}, status=503)
        if self._pending:
            self._last = self._pending.pop(0)
        message = {"PAYED": "Cashback will arrive soon", "DECLINED": "Insufficient funds"}
        return web.json_response(
            {"status": self._last, "message": message.get(self._last, "Waiting")},
            headers={"X-Polling-Delay": self.polling_delay},
        )

    async def get_balance(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.balance is None:
            return web.json_response({"code": "boom", "message": "down"}, status=503)
        return web.json_response(self.balance)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/4.0/payments/v1/preorder", self.get_preorder)
        app.router.add_post("/4.0/payments/v1/orders", self.post_order)
        app.router.add_get("/4.0/payments/v1/orders", self.get_order)
        app.router.add_get("/v1/users/{user}/balance", self.get_balance)
        return app


@asynccontextmanager
async def serving(fake: FakePayments) -> AsyncIterator[str]:
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
