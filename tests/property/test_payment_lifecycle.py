"""The order and payment lifecycle as a state machine over the REAL services, in-process.

eda, transactions and cashback are their real apps (SQLite in a temporary directory,
their HTTP routes called through ASGI), payments-eda is its real service and queue
handlers; cardstorage is a fake. Nothing runs in the background: the machine decides
when a POS sends a bill, a guest pays, transactions' relay runs, which pending queue
task is delivered (in any order, or twice), when time moves on (order TTL, hold
auto-release) and when cashback fails. After every step the money invariants of
SPEC 6 must hold.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodInternal, PaymentMethodPublic
from qrpay.cashback.client import CashbackClient
from qrpay.eda.client import EdaClient
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.config import DependencyConfig, QrpayConfig
from qrpay.kernel.errors import NotFound, QrpayError
from qrpay.kernel.http_client import HttpSession, ServiceClient
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.service import service_of
from qrpay.payments_eda import tasks
from qrpay.payments_eda.schemas import PayRequest
from qrpay.payments_eda.service import PaymentsMetrics, PaymentsService
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.service import TransactionsService
from tests.support.services import dev_config, dev_secdist, make_context, running_service

USER = "prop-user"
CARDS = {
    "good": "sandbox-ok-4242",
    "declined": "sandbox-insufficient-9995",
    "broken": "sandbox-error-0119",
}
TABLES = ("t1", "t2")
AMOUNTS = ("100.00", "250.50", "12000.00")
TTL_SECONDS = 600
HOLD_TTL_SECONDS = 3600.0

C = TypeVar("C", bound=ServiceClient)


def in_process(cls: type[C], client: httpx.AsyncClient) -> C:
    """The real typed client, its HTTP calls going to an in-process app through ASGI."""

    class InProcess(cls):  # type: ignore[valid-type,misc]
        async def call(
            self,
            method: str,
            path: str,
            *,
            endpoint: str,
            idempotent: bool,
            json: Any = None,
            params: Any = None,
            headers: Any = None,
            deadline_ms: int | None = None,
        ) -> Any:
            answer = await client.request(method, path, json=json, params=params, headers=headers)
            if answer.status_code < 400:
                return answer.json() if answer.content else None
            raise self._error_from_answer(answer.status_code, answer.content)

    return InProcess(
        session=HttpSession(),
        dependency=lambda: DependencyConfig(base_url="http://in-process"),
        metrics=ServiceMetrics("property"),
    )


class FakeCards(CardstorageClient):
    def __init__(self) -> None:
        pass

    def _card(self, card_id: str) -> PaymentMethodInternal:
        return PaymentMethodInternal(
            id=card_id,
            type="card",
            system="visa",
            mask=f"•••• {CARDS[card_id][-4:]}",
            expiry="12/30",
            available=True,
            user_id=USER,
            token=CARDS[card_id],
        )

    async def list_for_user(self, user_id: str) -> list[PaymentMethodPublic]:
        return [PaymentMethodPublic(**self._card(c).model_dump()) for c in CARDS]

    async def get_for_user(self, user_id: str, method_id: str) -> PaymentMethodInternal:
        if method_id not in CARDS:
            raise NotFound("no card", code="payment_method_not_found")
        return self._card(method_id)


def config(fail_accruals: bool = False) -> QrpayConfig:
    base = dev_config().model_dump(mode="json")
    base["orders"]["ttl_seconds"] = TTL_SECONDS
    base["transactions"]["hold_ttl_seconds"] = HOLD_TTL_SECONDS
    base["cashback_service"]["fail_accruals"] = fail_accruals
    base["payments"]["cashback_max_attempts"] = 3
    return QrpayConfig.model_validate(base)


class Stack:
    """The real apps and payments-eda's service, wired for one example."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clock = FrozenClock()
        self.runtime = RuntimeConfig.fixed(config(), dev_secdist())
        self.queue = TaskQueue()
        self.exit = AsyncExitStack()
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.apps: dict[str, Any] = {}

    async def start(self) -> None:
        await self.queue.open()
        for name in ("eda", "transactions", "cashback"):
            ctx = make_context(name, self.tmp, clock=self.clock, queue=self.queue)
            ctx.runtime = self.runtime  # one live config for all: the switch flips everywhere
            app, client = await self.exit.enter_async_context(running_service(ctx))
            self.apps[name], self.clients[name] = app, client
        self.service = PaymentsService(
            runtime=self.runtime,
            clock=self.clock,
            queue=self.queue,
            eda=in_process(EdaClient, self.clients["eda"]),
            cardstorage=FakeCards(),
            transactions=in_process(TransactionsClient, self.clients["transactions"]),
            cashback=in_process(CashbackClient, self.clients["cashback"]),
            metrics=PaymentsMetrics.of(ServiceMetrics("payments-eda-property")),
        )
        self.handlers = tasks.Handlers(self.service)

    async def stop(self) -> None:
        await self.exit.aclose()
        await self.queue.close()

    def set_fail_accruals(self, value: bool) -> None:
        self.runtime._config.current = config(fail_accruals=value)

    # --- the queue, by hand --------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        jobs = self.queue.app.connector.jobs  # type: ignore[attr-defined]
        due = []
        for job in sorted(jobs.values(), key=lambda j: j["id"]):
            if job["status"] != "todo":
                continue
            eta = job.get("scheduled_at")
            if eta is not None and eta > self.clock.now():
                continue
            due.append(job)
        return due

    async def run_job(self, job: dict[str, Any], *, keep: bool) -> None:
        """Run one task's handler; it leaves the queue when it succeeds, unless ``keep``."""
        name, payload = job["task_name"], dict(job["args"])
        job["tries"] = job.get("tries", 0) + 1
        try:
            if name == tasks.TRANSACTION_CALLBACK.name:
                await self.handlers.transaction_callback(payload)
            elif name == tasks.HOLD_WATCHDOG.name:
                await self.handlers.hold_watchdog(payload)
            elif name == tasks.ACCRUE_CASHBACK.name:
                await self.handlers.accrue_cashback(payload, job["tries"])
            else:  # pragma: no cover - a task nobody consumes would be a contract break
                raise AssertionError(f"unknown task {name}")
        except QrpayError:
            limit = self.runtime.config.payments.callback_max_attempts
            if job["tries"] >= limit:
                job["status"] = "failed"
            return  # stays queued: the queue would retry it
        if not keep:
            self.queue.app.connector.jobs.pop(job["id"], None)  # type: ignore[attr-defined]

    # --- what the services hold ------------------------------------------------------------

    async def order(self, order_id: str) -> dict[str, Any]:
        answer = await self.clients["eda"].get(f"/v1/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def operations(self, order_id: str) -> list[dict[str, Any]]:
        answer = await self.clients["transactions"].get(f"/v1/invoices/{order_id}")
        if answer.status_code == 404:
            return []
        assert answer.status_code == 200, answer.text
        ops: list[dict[str, Any]] = answer.json()["operations"]
        return ops

    async def accruals(self) -> list[dict[str, Any]]:
        answer = await self.clients["cashback"].get(f"/v1/users/{USER}/accruals")
        assert answer.status_code == 200, answer.text
        accruals: list[dict[str, Any]] = answer.json()["accruals"]
        return accruals


def live_holds(ops: list[dict[str, Any]]) -> list[str]:
    released = {
        op["target"] for op in ops if op["kind"] == "unhold" and op["status"] == "succeeded"
    }
    return [
        op["operation_id"]
        for op in ops
        if op["kind"] == "hold"
        and op["status"] == "succeeded"
        and op["operation_id"] not in released
    ]


class PaymentLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="qrpay-prop-")
        self.loop = asyncio.new_event_loop()
        self.stack = Stack(Path(self._tmp.name))
        self.run(self.stack.start())
        self.orders: dict[str, str] = {}  # table -> order_id
        self.signatures: dict[str, str] = {}

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.stack.stop())
        finally:
            self.loop.close()
            self._tmp.cleanup()

    # --- rules ---------------------------------------------------------------------------

    @rule(table=st.sampled_from(TABLES), amount=st.sampled_from(AMOUNTS))
    def pos_sends_bill(self, table: str, amount: str) -> None:
        body = {
            "client_id": "rest-1",
            "internal_order_id": table,
            "bill": {
                "currency": "RUB",
                "amount": amount,
                "elements": [{"name": "Dinner", "amount": amount}],
            },
        }
        answer = self.run(self.stack.clients["eda"].post("/v1/orders", json=body))
        # 409 once a payment started or the order closed: the bill cannot change then.
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 200:
            from qrpay.kernel.deeplink import sign

            order_id = answer.json()["order"]["order_id"]
            self.orders[table] = order_id
            self.signatures[order_id] = sign(dev_secdist().hmac_keys[0], order_id, "rest-1")

    @rule(table=st.sampled_from(TABLES), card=st.sampled_from(sorted(CARDS)))
    def guest_pays(self, table: str, card: str) -> None:
        order_id = self.orders.get(table)
        if order_id is None:
            return
        order = self.run(self.stack.order(order_id))
        request = PayRequest.model_validate(
            {
                "service": "restaurant",
                "order_id": order_id,
                "hmac": self.signatures[order_id],
                "payment_method": {"type": "card", "id": card},
                "amount": order["bill"]["amount"],
            }
        )
        try:
            self.run(self.stack.service.pay(request, USER, "en"))
        except QrpayError as exc:
            # The guest's answers to a paid, closed or changed order; anything else is a bug.
            if exc.code not in ("already_paid", "order_closed", "bill_changed"):
                raise

    @rule()
    def transactions_relay(self) -> None:
        self.run(service_of(self.stack.apps["transactions"], TransactionsService).relay_once())

    @rule(pick=st.integers(min_value=0, max_value=20), duplicate=st.booleans())
    def deliver_a_task(self, pick: int, duplicate: bool) -> None:
        """Any pending task, in any order; ``duplicate`` runs it and leaves it queued."""
        pending = self.stack.pending()
        if pending:
            self.run(self.stack.run_job(pending[pick % len(pending)], keep=duplicate))

    @rule(seconds=st.sampled_from((1.0, 31.0, TTL_SECONDS + 1.0, HOLD_TTL_SECONDS + 1.0)))
    def time_passes(self, seconds: float) -> None:
        self.stack.clock.advance(seconds)

    @rule()
    def eda_ttl_job(self) -> None:
        self.run(service_of(self.stack.apps["eda"], OrderService).close_expired(TTL_SECONDS))

    @rule(failing=st.booleans())
    def cashback_switch(self, failing: bool) -> None:
        self.stack.set_fail_accruals(failing)

    @rule()
    def settle(self) -> None:
        """Let every callback and follow-up run to the end; then closed orders hold no money."""
        self.stack.set_fail_accruals(False)
        for _ in range(30):
            self.run(service_of(self.stack.apps["transactions"], TransactionsService).relay_once())
            pending = self.stack.pending()
            if not pending:
                break
            for job in pending:
                self.run(self.stack.run_job(job, keep=False))
        for order_id in self.orders.values():
            order = self.run(self.stack.order(order_id))
            ops = self.run(self.stack.operations(order_id))
            if order["status"] == "CANCELED":
                assert live_holds(ops) == [], (order, ops)
            if order["status"] == "WAITING":
                assert live_holds(ops) == [], (order, ops)

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def money_is_consistent(self) -> None:
        accruals = self.run(self.stack.accruals())
        per_order: dict[str, int] = {}
        for accrual in accruals:
            per_order[accrual["order_id"]] = per_order.get(accrual["order_id"], 0) + 1
        assert all(count == 1 for count in per_order.values()), accruals

        for order_id in self.orders.values():
            order = self.run(self.stack.order(order_id))
            ops = self.run(self.stack.operations(order_id))
            event(f"an order was {order['status']}")
            live = live_holds(ops)
            clears = [op for op in ops if op["kind"] == "clear" and op["status"] == "succeeded"]
            assert len(live) <= 1, ops
            assert len(clears) <= 1, ops
            released = {
                op["target"] for op in ops if op["kind"] == "unhold" and op["status"] == "succeeded"
            }
            if order["status"] == "PAYED":
                assert [c["target"] for c in clears] == [order["payment_id"]], (order, ops)
                assert order["payment_id"] not in released, (order, ops)
            if order_id in per_order:
                # Cashback only for a paid order, and for the bill it was paid with.
                assert order["status"] == "PAYED", (order, accruals)
                expected = min(
                    (Decimal(order["bill"]["amount"]) * Decimal("0.3")).to_integral_value(
                        rounding="ROUND_DOWN"
                    ),
                    Decimal(3000),
                )
                amount = next(a["amount"] for a in accruals if a["order_id"] == order_id)
                assert Decimal(amount) == expected


TestPaymentLifecycle = PaymentLifecycle.TestCase
TestPaymentLifecycle.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
