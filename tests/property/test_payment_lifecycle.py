"""The order and payment lifecycle as a state machine over the REAL services, in-process.

eda, transactions and cashback are their real apps (SQLite in a temporary directory,
their HTTP routes called through ASGI), payments-eda is its real service and queue
handlers; cardstorage is a fake. Nothing runs in the background: the machine decides
when a POS sends a bill, a guest pays (a captured hold: transactions clears it in the
same pass), transactions' relay runs (all of it, or only its reconciliation of pending
operations, or only its callbacks), which pending queue task is delivered (in any order,
or twice, or an old callback once more), when payments-eda's sweep of overdue payments
runs, when time moves on (order TTL, hold auto-release, retry backoff, overdue payments)
and when cashback fails.

Faults, each set by a rule for the next call it meets:

- an answer between payments-eda and eda, transactions or cashback is lost (the request
  was carried out, the caller sees ``DependencyUnavailable``) or late (carried out, and
  before the answer arrives the relay runs, callbacks are handled, the payment becomes
  overdue and the sweep runs, or requests delayed before arrive);
- a request to transactions is delayed: the caller gives up, the request arrives later;
- the gateway loses its answer or times out (the money moved), is unreachable (it did
  not), or its lookup of a key fails; besides the sandbox's own cards that lose the first
  answer of every key (``sandbox-lost-``), answer after the deadline (``sandbox-late-``)
  or refuse every clear and unhold (``sandbox-stuck-``).

One payment model (issue 18): every payment is a share of the bill, the whole bill the
share of everything left, and every pay request may carry the guest's idempotency token:
guests repeat requests (a double tap at once, a retry later) under the same token and send
another body under a used one; the POS replaces a bill below what is paid, down to exactly
what is paid, or in another currency.

After every step the money invariants of SPEC 6 must hold, checked against both what
the services recorded and what the gateway actually did: money cleared never above the
total, the order PAYED exactly when its cleared payments cover it, one payment per token,
an item in at most one live payment, cashback at most once per payment and within the
order's cap, shared in the order eda numbered the payments as they cleared. ``settle``
delivers everything and reconciles until nothing changes, then checks that every hold
ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import Awaitable, Callable, Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodInternal, PaymentMethodPublic
from qrpay.cashback.client import CashbackClient
from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import ShareChoice, ShareWay
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import DependencyUnavailable, NotFound, QrpayError
from qrpay.kernel.http_client import HttpSession, ServiceClient, unavailable_code
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.money import minor_units
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.service import service_of
from qrpay.payments_eda import tasks
from qrpay.payments_eda.refunds import reversal_of
from qrpay.payments_eda.schemas import PayRequest, RefundRequest, SharePayRequest, payment_id_for
from qrpay.payments_eda.service import PaymentsMetrics, PaymentsService
from qrpay.payments_eda.shares import allocate_cashback
from qrpay.runner.config import QrpayConfig
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.config import GatewayConfig
from qrpay.transactions.gateway import GatewayResult, GatewayUnavailable, SandboxGateway
from qrpay.transactions.service import TransactionsService
from tests.support.services import dev_config, dev_secdist, make_context, running_service

USER = "prop-user"
CARDS = {
    "good": "sandbox-ok-4242",
    "declined": "sandbox-insufficient-9995",
    "broken": "sandbox-error-0119",  # never carried out, never answered: pending for good
    "lost": "sandbox-lost-4000",  # carried out; the first answer of every key is lost
    "late": "sandbox-late-4001",  # carried out; the first answer comes after the deadline
    "stuck": "sandbox-stuck-4002",  # holds; every clear and unhold is refused for good
    "refund_fails": "sandbox-failing-refund-4003",  # pays; every refund is refused for good
    "refund_slow": "sandbox-slow-refund-4004",  # pays; the first answer of a refund is lost
}
TABLES = ("t1", "t2")
AMOUNTS = ("100.00", "250.50", "12000.00")
# Each bill's lines (they add up to it): guests of a split bill pick items among them. The
# largest bill's cashback (30%) is above rest-1's cap of 3000: its shares share the cap.
LINES = {
    "100.00": ("40.00", "35.00", "25.00"),
    "250.50": ("100.50", "100.00", "50.00"),
    "12000.00": ("6000.00", "4000.00", "2000.00"),
}
CASHBACK_RATE, CASHBACK_CAP = Decimal("0.3"), Decimal(3000)  # rest-1's, config/dev
TTL_SECONDS = 600
HOLD_TTL_SECONDS = 3600.0
RETRY_CAP_SECONDS = 30.0
PAID_OR_REFUSED = (
    "already_paid",
    "order_closed",
    "bill_changed",
    "split_under_way",
    # A whole-bill pay with a token while another payment holds everything left.
    "payment_in_progress",
)
# What a guest paying a share may be told besides those: the bill moved under their choice.
SHARE_REFUSED = (
    *PAID_OR_REFUSED,
    "payment_in_progress",
    "share_price_changed",
    "item_taken",
    "amount_exceeds_left",
    "nothing_left",
)

# How the POS refunds (``pos_refunds``), and how the request goes out.
REFUND_WAYS = ("one", "one", "spread", "tip_only", "too_much", "unpaid")
REFUND_REPEATS = ("once", "once", "double", "again", "other_body")
# What the POS may be told for a refund besides a lost answer.
REFUND_REFUSED = (
    "payment_not_refundable",
    "refund_exceeds_paid",
    "refund_id_reused",
    "invalid_refund_amount",
    "order_busy",
    "payment_not_found",
)

# Where payments-eda's calls can go wrong (the endpoint names of the typed clients).
TRANSACTIONS_ENDPOINTS = (
    "start_hold",
    "start_clear",
    "start_unhold",
    "void_hold",
    "get_invoice",
    "start_refund",
)
EDA_ENDPOINTS = (
    "get_order",
    "payments_to_check",
    "start_payment",
    "complete_payment",
    "begin_rollback_payment",
    "fail_payment",
    "ledger",
    "refund",
    "complete_refund",
    "fail_refund",
)
CASHBACK_ENDPOINTS = ("accrue", "order", "reverse")
# What happens while an answer is on its way back (see ``Stack.meanwhile``).
MEANWHILE = ("nothing", "relay", "callbacks", "sweep", "arrivals")
# A fault hits the next call of an endpoint, or of any endpoint of a downstream (``<name>:*``).
ANSWER_TARGETS = (
    "transactions:*",
    "eda:*",
    *TRANSACTIONS_ENDPOINTS,
    *EDA_ENDPOINTS[2:],  # the writes (and the ledger): "eda:*" mostly meets the reads
    *CASHBACK_ENDPOINTS,
)
DELAY_TARGETS = ("transactions:*", *TRANSACTIONS_ENDPOINTS)

C = TypeVar("C", bound=ServiceClient)


def tally(text: str) -> None:
    """Count ``text`` in hypothesis' statistics (nothing when a test replays steps by hand)."""
    with contextlib.suppress(InvalidArgument):
        event(text)


@dataclass(frozen=True)
class Fault:
    mode: str  # "lost" | "late" | "delayed"
    meanwhile: str = "nothing"


ANSWER_FAULTS = st.one_of(
    st.builds(Fault, st.just("lost"), st.sampled_from(MEANWHILE)),
    st.builds(Fault, st.just("late"), st.sampled_from(MEANWHILE[1:])),
)


@dataclass(frozen=True)
class Delayed:
    endpoint: str
    path: str
    body: Any
    send: Callable[[], Awaitable[httpx.Response]]


@dataclass
class Wire:
    """payments-eda's calls to its downstreams, and what goes wrong with the next one of each."""

    meanwhile: Callable[[str], Awaitable[None]]
    faults: dict[str, Fault] = field(default_factory=dict)  # endpoint -> its next call's fault
    # Requests that were sent but have not arrived yet: each arrives when a rule says so.
    in_flight: list[Delayed] = field(default_factory=list)
    # Every fault that hit a call: (endpoint, fault, the request's body).
    fired: list[tuple[str, Fault, Any]] = field(default_factory=list)

    def take(self, downstream: str, endpoint: str) -> Fault | None:
        fault = self.faults.pop(endpoint, None)
        return fault if fault is not None else self.faults.pop(f"{downstream}:*", None)


def in_process(cls: type[C], client: httpx.AsyncClient, wire: Wire) -> C:
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
            def send() -> Awaitable[httpx.Response]:
                return client.request(method, path, json=json, params=params, headers=headers)

            fault = wire.take(self.downstream, endpoint)
            if fault is None:
                answer = await send()
            else:
                wire.fired.append((endpoint, fault, json))
                tally(f"answer fault: {fault.mode} {endpoint}")
                no_answer = DependencyUnavailable(
                    f"{self.downstream}: {endpoint} got no answer ({fault.mode})",
                    code=unavailable_code(self.downstream),
                )
                if fault.mode == "delayed":
                    wire.in_flight.append(Delayed(endpoint, path, json, send))
                    raise no_answer
                answer = await send()
                await wire.meanwhile(fault.meanwhile)
                if fault.mode == "lost":
                    raise no_answer
            if answer.status_code < 400:
                return answer.json() if answer.content else None
            raise self._error_from_answer(answer.status_code, answer.content)

    return InProcess(
        session=HttpSession(),
        dependency=lambda: DependencyConfig(base_url="http://in-process"),
        metrics=ServiceMetrics("property"),
    )


class SteppedGateway(SandboxGateway):
    """The sandbox adapter without real waiting, plus the faults the machine sets.

    A wait as long as the call deadline is the deadline passing: ``TimeoutError``, as
    ``asyncio.wait_for`` raises it around the call. ``next_call`` is the fault of the
    next hold/clear/unhold: ``lost`` or ``timeout`` (carried out, no answer) or
    ``unreachable`` (not carried out); ``lookup_down`` fails the next lookup.
    """

    def __init__(self, config: Callable[[], GatewayConfig]) -> None:
        super().__init__(config)
        self.next_call: str | None = None
        self.lookup_down = False
        self.keys: dict[str, str] = {}  # idempotency key -> kind, of every call made

    async def _delay(self, seconds: float) -> None:
        if seconds >= self._config().call_timeout_seconds:
            raise TimeoutError

    async def _call(self, kind: str, token: str, idempotency_key: str) -> GatewayResult:
        self.keys[idempotency_key] = kind
        fault, self.next_call = self.next_call, None
        if fault is not None:
            tally(f"gateway fault: {fault} {kind}")
        if fault == "unreachable":
            raise GatewayUnavailable(f"{kind} never reached the gateway")
        result = await super()._call(kind, token, idempotency_key)
        if fault == "lost":
            raise GatewayUnavailable(f"the gateway's answer to {kind} was lost")
        if fault == "timeout":
            raise TimeoutError
        return result

    async def lookup(self, idempotency_key: str) -> GatewayResult | None:
        if self.lookup_down:
            self.lookup_down = False
            tally("gateway fault: lookup down")
            raise GatewayUnavailable("the gateway's lookup is down")
        return await super().lookup(idempotency_key)

    async def truth(self, idempotency_key: str) -> GatewayResult | None:
        """What the gateway did with this key (never faulty): the ledger of real money."""
        return await super().lookup(idempotency_key)


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


@functools.cache  # parsing the YAML on every switch of cashback would cost more than a step
def config(fail_accruals: bool = False) -> QrpayConfig:
    base = dev_config().model_dump(mode="json")
    base["orders"]["ttl_seconds"] = TTL_SECONDS
    base["transactions"]["hold_ttl_seconds"] = HOLD_TTL_SECONDS
    base["transactions"]["gateway"]["retry_cap_seconds"] = RETRY_CAP_SECONDS
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
        self.wire = Wire(meanwhile=self.meanwhile)
        self.callbacks_seen: list[dict[str, Any]] = []  # every callback payload delivered

    async def start(self) -> None:
        await self.queue.open()
        for name in ("eda", "transactions", "cashback"):
            ctx = make_context(name, self.tmp, clock=self.clock, queue=self.queue)
            ctx.runtime = self.runtime  # one live config for all: the switch flips everywhere
            app, client = await self.exit.enter_async_context(running_service(ctx))
            self.apps[name], self.clients[name] = app, client
        self.transactions = service_of(self.apps["transactions"], TransactionsService)
        self.gateway = SteppedGateway(lambda: self.runtime.config.transactions.gateway)
        self.transactions.gateway = self.gateway
        self.service = PaymentsService(
            runtime=self.runtime,
            clock=self.clock,
            queue=self.queue,
            eda=in_process(EdaClient, self.clients["eda"], self.wire),
            cardstorage=FakeCards(),
            transactions=in_process(TransactionsClient, self.clients["transactions"], self.wire),
            cashback=in_process(CashbackClient, self.clients["cashback"], self.wire),
            metrics=PaymentsMetrics.of(ServiceMetrics("payments-eda-property")),
        )
        self.handlers = tasks.Handlers(self.service)

    async def stop(self) -> None:
        await self.exit.aclose()
        await self.queue.close()

    def set_fail_accruals(self, value: bool) -> None:
        self.runtime._config.current = config(fail_accruals=value)

    async def meanwhile(self, what: str) -> None:
        """What happens while an answer is on its way back to payments-eda."""
        if what == "relay":
            await self.transactions.relay_once()
        elif what == "callbacks":
            # The operation's outcome overtakes the answer: its callback is handled first.
            for _ in range(3):
                await self.transactions.relay_once()
                for job in self.pending():
                    if job["task_name"] == tasks.TRANSACTION_CALLBACK.name:
                        await self.run_job(job, keep=False)
        elif what == "sweep":
            # So late that the payment is overdue, and the sweep finds it meanwhile.
            self.clock.advance(self.runtime.config.payments.hold_watchdog_seconds + 1)
            await self.sweep()
        elif what == "arrivals":
            # Requests delayed before arrive (say, the hold this caller looks for), and the
            # relay takes them to the gateway.
            while self.wire.in_flight:
                await self.arrive(0)
            await self.transactions.relay_once()

    async def arrive(self, index: int) -> None:
        """A delayed request arrives; nobody waits for its answer any more."""
        delayed = self.wire.in_flight.pop(index)
        answer = await delayed.send()
        # Whatever it finds, it must not break anything.
        assert answer.status_code < 500, answer.text

    async def sweep(self) -> None:
        """One round of payments-eda's periodic sweep; a failed round is logged, not fatal."""
        with contextlib.suppress(QrpayError):
            # Small pages, so that paging through more than one is exercised.
            await self.service.sweep_stuck_payments(page_size=2)

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

    def todo_ids(self) -> list[int]:
        jobs = self.queue.app.connector.jobs  # type: ignore[attr-defined]
        return sorted(job["id"] for job in jobs.values() if job["status"] == "todo")

    async def run_job(self, job: dict[str, Any], *, keep: bool) -> None:
        """Run one task's handler; it leaves the queue when it succeeds, unless ``keep``."""
        name, payload = job["task_name"], dict(job["args"])
        job["tries"] = job.get("tries", 0) + 1
        try:
            if name == tasks.TRANSACTION_CALLBACK.name:
                self.callbacks_seen.append(payload)
                await self.handlers.transaction_callback(payload)
            elif name == tasks.ACCRUE_CASHBACK.name:
                await self.handlers.accrue_cashback(payload, job["tries"])
            elif name == tasks.SEND_REFUND.name:
                await self.handlers.send_refund(payload)
            elif name == tasks.REVERSE_CASHBACK.name:
                await self.handlers.reverse_cashback(payload)
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

    async def read(self, service: str, path: str) -> Any:
        """``GET path`` of ``service``, which must answer 200: its body."""
        answer = await self.clients[service].get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def order(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.read("eda", f"/v1/orders/{order_id}")
        return result

    async def ledger(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.read("eda", f"/v1/orders/{order_id}/payments")
        return result

    async def operations(self, invoice_id: str) -> list[dict[str, Any]]:
        answer = await self.clients["transactions"].get(f"/v1/invoices/{invoice_id}")
        if answer.status_code == 404:
            return []
        assert answer.status_code == 200, answer.text
        ops: list[dict[str, Any]] = answer.json()["operations"]
        return ops

    async def cashback_of(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.read("cashback", f"/v1/cashback/orders/{order_id}")
        return result

    async def balances(self) -> list[dict[str, Any]]:
        balances: list[dict[str, Any]] = (await self.read("cashback", f"/v1/users/{USER}/balance"))[
            "balances"
        ]
        return balances

    async def accruals(self) -> list[dict[str, Any]]:
        accruals: list[dict[str, Any]] = (
            await self.read("cashback", f"/v1/users/{USER}/accruals")
        )["accruals"]
        return accruals

    async def observe(self, order_ids: list[str]) -> tuple[list[Observed], list[dict[str, Any]]]:
        """The orders and their payments as eda has them, each payment's operations as
        transactions has them (its invoice) and what the gateway did with each key of
        theirs; and the guest's cashback accruals."""
        observed = []
        for order_id in order_ids:
            order, ledger = await self.order(order_id), await self.ledger(order_id)
            payments = []
            for payment in ledger["payments"]:
                ops, at_gateway, currency = await self.invoice(payment["invoice_id"])
                payments.append(PaymentSeen(payment, ops, at_gateway, self.gateway.keys, currency))
            observed.append(Observed(order, ledger, tuple(payments)))
        return observed, await self.accruals()

    async def invoice(
        self, invoice_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, str | None], str | None]:
        """An invoice's operations, what the gateway did with each of their keys (and of
        every key it saw for the invoice): ``<invoice_id>:<operation_id>``, and its currency."""
        answer = await self.clients["transactions"].get(f"/v1/invoices/{invoice_id}")
        if answer.status_code == 404:
            ops: list[dict[str, Any]] = []
            currency = None
        else:
            assert answer.status_code == 200, answer.text
            ops, currency = answer.json()["operations"], answer.json()["currency"]
        keys = [f"{invoice_id}:{op['operation_id']}" for op in ops]
        keys += [key for key in self.gateway.keys if key.startswith(f"{invoice_id}:")]
        at_gateway = {}
        for key in keys:
            result = await self.gateway.truth(key)
            at_gateway[key] = None if result is None else result.status.value
        return ops, at_gateway, currency


@dataclass(frozen=True)
class PaymentSeen:
    """One payment of an order: as eda's ledger has it, its invoice's operations, and what
    the gateway did with its keys."""

    payment: dict[str, Any]
    ops: list[dict[str, Any]]
    at_gateway: dict[str, str | None]
    kinds: dict[str, str]  # the gateway's every key -> the kind of call it was
    currency: str | None  # its invoice's, once there is one

    @property
    def id(self) -> str:
        return str(self.payment["payment_id"])

    @property
    def invoice(self) -> str:
        return str(self.payment["invoice_id"])

    @property
    def state(self) -> str:
        return str(self.payment["state"])

    @property
    def amount(self) -> Decimal:
        """The bill part (the tip is held and cleared with it, but is not part of the bill)."""
        return Decimal(self.payment["amount"])

    def gateway_status(self, op: dict[str, Any]) -> str | None:
        return self.at_gateway[f"{self.invoice}:{op['operation_id']}"]

    def done_at_gateway(self, kind: str) -> list[str]:
        return [
            key
            for key, status in self.at_gateway.items()
            if status == "succeeded" and self.kinds.get(key) == kind
        ]

    @property
    def cleared(self) -> bool:
        """The gateway took the payment's money."""
        return bool(self.done_at_gateway("clear"))

    @property
    def holds_money(self) -> bool:
        """The gateway holds the payment's money, or took it."""
        held = self.done_at_gateway("hold") and not self.done_at_gateway("unhold")
        return bool(held) or self.cleared


@dataclass(frozen=True)
class Observed:
    order: dict[str, Any]
    ledger: dict[str, Any]  # the order's payments as eda has them
    payments: tuple[PaymentSeen, ...]

    @property
    def order_id(self) -> str:
        return str(self.order["order_id"])


def is_done(op: dict[str, Any], kind: str) -> bool:
    return bool(op["kind"] == kind and op["status"] == "succeeded")


def cashback(bill: Decimal) -> Decimal:
    """rest-1's cashback on a bill (or a share's bill part): 30%, rounded down, capped."""
    return min((bill * CASHBACK_RATE).to_integral_value(rounding="ROUND_DOWN"), CASHBACK_CAP)


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


@dataclass(frozen=True)
class GuestShare:
    way: str  # "rest" | "equal" | "items" | "custom"
    card: str
    tip: str  # "none" | "percent" | "amount"
    parts: int = 2
    items: tuple[int, ...] = ()
    fraction: Decimal = Decimal(1)
    # How the guest's request goes out: once; twice at once (a double tap); again after
    # the first answered (a retry); or items on a choice that is not by items (a 400).
    taps: str = "once"


GUEST_SHARES = st.builds(
    GuestShare,
    way=st.sampled_from(("rest", "equal", "items", "custom")),
    # Mostly cards that pay: a share must get through for the next one to meet it.
    card=st.sampled_from(("good",) * 6 + tuple(sorted(CARDS))),
    tip=st.sampled_from(("none", "percent", "amount")),
    parts=st.integers(min_value=2, max_value=4),
    items=st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True).map(tuple),
    fraction=st.sampled_from((Decimal("0.25"), Decimal("0.5"), Decimal(1), Decimal("1.5"))),
    taps=st.sampled_from(("once", "once", "double", "retry", "stray_items")),
)
# How a guest paying the whole bill sends it: with no token (a seed-era client), a new one,
# the table's last token again with the same body, twice at once, or the last token with
# another body (another card).
WHOLE_BILL_TOKENS = ("none", "fresh", "repeat", "double", "other_body")
# How the POS replaces a bill: below what is paid or held, down to exactly what is paid,
# above it, or in another currency.
REPLACEMENTS = ("below", "equal_to_paid", "above", "other_currency")


class PaymentLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="qrpay-prop-")
        self.loop = asyncio.new_event_loop()
        self.stack = Stack(Path(self._tmp.name))
        self.run(self.stack.start())
        self.orders: dict[str, str] = {}  # table -> its current order_id
        self.every_order: dict[str, None] = {}  # every order_id so far, in order
        self.signatures: dict[str, str] = {}
        self.visits: dict[str, int] = {}  # table -> how many guests it had before these
        self.tokens = 0
        # order_id -> every token a pay request of it carried; and how many carried none.
        self.tokens_used: dict[str, set[str]] = {}
        self.tokenless: dict[str, int] = {}
        # order_id -> the last whole-bill request with a token: (token, request).
        self.last_whole: dict[str, tuple[str, PayRequest]] = {}
        self.refund_ids = 0
        # order_id -> the POS's last refund request of it.
        self.last_refund: dict[str, RefundRequest] = {}

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def refused_as_expected(
        self, exc: QrpayError, expected: Collection[str], fired_before: int, what: str
    ) -> bool:
        """Whether ``exc`` is an answer the guest may get (one of ``expected``, or a
        downstream's answer this very request lost: a fault fired since ``fired_before``),
        tallied as such; anything else is a bug the caller raises."""
        faulted = len(self.stack.wire.fired) > fired_before
        if exc.code not in expected and not (faulted and isinstance(exc, DependencyUnavailable)):
            return False
        tally(f"{what} refused: {exc.code}")
        return True

    def teardown(self) -> None:
        try:
            self.run(self.stack.stop())
        finally:
            self.loop.close()
            self._tmp.cleanup()

    def new_token(self, order_id: str) -> str:
        self.tokens += 1
        token = f"tok-{self.tokens:06d}"
        self.tokens_used.setdefault(order_id, set()).add(token)
        return token

    # --- rules: the product's own moves ----------------------------------------------------

    @initialize(amount=st.sampled_from(AMOUNTS))
    def bills_on_every_table(self, amount: str) -> None:
        for table in TABLES:
            self.pos_sends_bill(table, amount)

    def bill(self, amount: str, currency: str = "RUB", lines: tuple[str, ...] = ()) -> Any:
        return {
            "currency": currency,
            "amount": amount,
            "elements": [
                {"name": name, "amount": line}
                for name, line in zip(
                    ("Soup", "Steak", "Wine"), lines or LINES[amount], strict=True
                )
            ],
        }

    @rule(table=st.sampled_from(TABLES), amount=st.sampled_from(AMOUNTS))
    def pos_sends_bill(self, table: str, amount: str) -> None:
        """The table's bill, new or changed; once its order is paid or closed, the next
        guests at the table get a new POS order (a new visit)."""
        current = self.orders.get(table)
        if current is not None:
            status = self.run(self.stack.order(current))["status"]
            if status in ("PAYED", "CANCELED"):
                self.visits[table] = self.visits.get(table, 0) + 1
        self.send_bill(table, self.bill(amount))

    def send_bill(self, table: str, bill: Any) -> Any:
        body = {
            "client_id": "rest-1",
            "internal_order_id": f"{table}.{self.visits.get(table, 0)}",
            "bill": bill,
        }
        answer = self.run(self.stack.clients["eda"].post("/v1/orders", json=body))
        # 409 once the bill cannot change (paid, closed, held whole, or below what is
        # reserved); never a 5xx.
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 200:
            from qrpay.kernel.deeplink import sign

            order_id = answer.json()["order"]["order_id"]
            self.orders[table] = order_id
            self.every_order[order_id] = None
            self.signatures[order_id] = sign(dev_secdist().hmac_keys[0], order_id, "rest-1")
        return answer

    @rule(table=st.sampled_from(TABLES), how=st.sampled_from(REPLACEMENTS))
    def pos_replaces_bill(self, table: str, how: str) -> None:
        """The POS sends the table's bill again, changed around what guests paid."""
        order_id = self.orders.get(table)
        if order_id is None:
            return
        ledger = self.run(self.stack.ledger(order_id))
        old = self.run(self.stack.order(order_id))["bill"]
        lines = tuple(e["amount"] for e in old["elements"])
        paid, held = Decimal(ledger["paid"]), Decimal(ledger["held"])
        total = Decimal(ledger["total"])
        if how == "below":
            amount = paid + held - Decimal("0.01")
        elif how == "equal_to_paid":
            amount = paid
        elif how == "above":
            amount = total + Decimal(10)
        else:
            amount = total
        if amount <= 0:
            return
        currency = old["currency"]
        if how == "other_currency":
            currency = "USD" if old["currency"] != "USD" else "RUB"
        answer = self.send_bill(table, self.bill(f"{amount:.2f}", currency, lines))
        tally(f"replacement {how}: {answer.status_code}")
        if answer.status_code == 409:
            tally(f"replacement refused: {answer.json()['code']}")
            return
        order = answer.json()["order"]
        if how == "below" and order["order_id"] == order_id:
            # Nothing paid or held, or an order already settled (a new visit then).
            assert paid + held == 0 or ledger["status"] == "PAYED", (ledger, order)
        if how == "other_currency" and order["order_id"] == order_id:
            assert not ledger["payments"], ("the currency of an order with payments", ledger)
        if how == "equal_to_paid" and order["order_id"] == order_id and held == 0:
            assert order["status"] == "PAYED", ("a bill equal to what is paid", order, ledger)

    def whole_bill_request(self, order_id: str, card: str) -> PayRequest:
        order = self.run(self.stack.order(order_id))
        return PayRequest.model_validate(
            {
                "service": "restaurant",
                "order_id": order_id,
                "hmac": self.signatures[order_id],
                "payment_method": {"type": "card", "id": card},
                "amount": order["bill"]["amount"],
                "currency": order["bill"]["currency"],
            }
        )

    @rule(
        table=st.sampled_from(TABLES),
        card=st.sampled_from(sorted(CARDS)),
        tokens=st.sampled_from(WHOLE_BILL_TOKENS),
    )
    def guest_pays(self, table: str, card: str, tokens: str) -> None:
        """A guest pays the whole bill: the share of everything left."""
        order_id = self.orders.get(table)
        if order_id is None:
            return
        request = self.whole_bill_request(order_id, card)
        token: str | None = None
        last = self.last_whole.get(order_id)
        if tokens in ("repeat", "other_body") and last is not None:
            token, request = last
            if tokens == "other_body":
                other = "declined" if request.payment_method.id != "declined" else "good"
                request = request.model_copy(
                    update={
                        "payment_method": request.payment_method.model_copy(update={"id": other})
                    }
                )
        elif tokens != "none":
            token = self.new_token(order_id)
            self.last_whole[order_id] = (token, request)
        if token is None:
            self.tokenless[order_id] = self.tokenless.get(order_id, 0) + 1
        fired_before = len(self.stack.wire.fired)
        # Another body under a used token is refused as such, or, when that token's first
        # request made no payment, as any new whole-bill payment may be.
        refused = (*PAID_OR_REFUSED, "idempotency_token_reused")

        async def pay() -> Any:
            try:
                return await self.stack.service.pay(request, token, USER, "en")
            except QrpayError as exc:
                # The guest's answers to a paid, closed or changed order.
                if not self.refused_as_expected(exc, refused, fired_before, "whole bill"):
                    raise
                return None

        async def twice() -> list[Any]:
            return list(await asyncio.gather(pay(), pay()))

        answers = self.run(twice()) if tokens == "double" else [self.run(pay())]
        if token is not None:
            expected = payment_id_for(order_id, token)
            for answer in answers:
                # A repeat is the same payment, whatever became of it.
                if answer is not None and answer.payment_id is not None:
                    assert answer.payment_id == expected, (answer, token)
        fired = self.stack.wire.fired[fired_before:]
        unknown_hold = [
            f for f in fired if f[0] == "start_hold" and f[1].mode in ("lost", "delayed")
        ]
        if token is not None and unknown_hold and all(f[1].meanwhile == "nothing" for f in fired):
            # The hold's outcome is unknown (it may exist, the money may move): the payment
            # stays under way, never read as a failure and given back by the request.
            ledger = self.run(self.stack.ledger(order_id))
            payment = next(
                p for p in ledger["payments"] if p["payment_id"] == payment_id_for(order_id, token)
            )
            assert payment["state"] == "holding", (payment, fired)
            ops = self.run(self.stack.operations(payment["invoice_id"]))
            hold = next((op for op in ops if op["operation_id"] == payment["payment_id"]), None)
            assert hold is None or hold["status"] == "pending", (payment, ops)

    @rule(table=st.sampled_from(TABLES), guests=st.lists(GUEST_SHARES, min_size=1, max_size=3))
    def guests_pay_shares(self, table: str, guests: list[GuestShare]) -> None:
        """Guests at one table each pay a share (everything left, an equal part, items, or an
        amount; with a tip or not), as the page does: each is quoted first, then all of
        them pay at once (so the later ones may find their quote stale); a guest may tap
        twice at once or send the same request again after its answer."""
        order_id = self.orders.get(table)
        if order_id is None:
            return
        signature = self.signatures[order_id]
        quoted: list[tuple[GuestShare, ShareChoice, str]] = []
        for guest in guests:
            choice = self.run(self.share_choice(order_id, guest))
            if choice is None:
                continue
            try:
                quote = self.run(self.stack.service.quote(order_id, signature, choice, "en"))
            except QrpayError as exc:
                if exc.code not in SHARE_REFUSED and not isinstance(exc, DependencyUnavailable):
                    raise
                continue
            quoted.append((guest, choice, quote.amount))
        fired_before = len(self.stack.wire.fired)

        async def send(request: SharePayRequest, token: str) -> Any:
            try:
                answer = await self.stack.service.pay_share(request, token, USER, "en")
            except QrpayError as exc:
                if not self.refused_as_expected(exc, SHARE_REFUSED, fired_before, "share"):
                    raise
                return None
            assert answer.share_id == payment_id_for(order_id, token), answer
            return answer

        async def pay(guest: GuestShare, choice: ShareChoice, price: str) -> None:
            tip: dict[str, Any] = {}
            if guest.tip == "percent":
                tip = {"tip_percent": 10}
            elif guest.tip == "amount":
                tip = {"tip": "1.00"}
            share = choice.model_dump(mode="json")
            if guest.taps == "stray_items":
                if choice.way == ShareWay.ITEMS:
                    return
                share["items"] = [0]
                with pytest.raises(ValueError, match="items"):
                    ShareChoice.model_validate(share)
                tally("share refused: items without way items")
                return
            request = SharePayRequest.model_validate(
                {
                    "service": "restaurant",
                    "order_id": order_id,
                    "hmac": signature,
                    "payment_method": {"type": "card", "id": guest.card},
                    "amount": price,
                    "currency": "RUB",
                    "share": share,
                    **tip,
                }
            )
            token = self.new_token(order_id)
            if guest.taps == "double":
                await asyncio.gather(send(request, token), send(request, token))
            else:
                first = await send(request, token)
                if guest.taps == "retry":
                    again = await send(request, token)
                    if first is not None and again is not None:
                        assert again.share_id == first.share_id
            tally(f"share sent: {choice.way.value}, {guest.taps}")

        async def all_at_once() -> None:
            await asyncio.gather(*(pay(*q) for q in quoted))

        self.run(all_at_once())

    async def share_choice(self, order_id: str, guest: GuestShare) -> ShareChoice | None:
        if guest.way == "custom":
            # A part of what is left as the guest sees it (above 1: more than is left).
            try:
                split = await self.stack.service.split(order_id, self.signatures[order_id], "en")
            except DependencyUnavailable:
                return None  # a fault set for the next call met this read
            amount = (Decimal(split.left) * guest.fraction).quantize(Decimal("0.01"))
            if amount < 1:
                return None
            return ShareChoice(way=ShareWay.AMOUNT, amount=str(amount))
        if guest.way == "equal":
            return ShareChoice(way=ShareWay.EQUAL, parts=guest.parts)
        if guest.way == "items":
            return ShareChoice(way=ShareWay.ITEMS, items=guest.items)
        return ShareChoice(way=ShareWay.REST)

    # hypothesis favours the first rule (by argument count, then name): the whole relay, a
    # cheap step that moves every payment on, is that one.
    # --- refunds (issue 19) ---------------------------------------------------------------

    @rule(
        pick=st.integers(min_value=0, max_value=20),
        how=st.sampled_from(REFUND_WAYS),
        fraction=st.sampled_from((Decimal("0.25"), Decimal("0.5"), Decimal(1))),
        repeat=st.sampled_from(REFUND_REPEATS),
    )
    def pos_refunds(self, pick: int, how: str, fraction: Decimal, repeat: str) -> None:
        """The POS refunds a guest of one of its orders: part or all of one payment (tips
        apart or with it), or spread over the order's payments; more than was paid; a
        payment not paid. Sent once, twice at once, again later, or its id with another
        amount."""
        order_ids = list(self.every_order)
        order_id = order_ids[pick % len(order_ids)]
        last = self.last_refund.get(order_id)
        if repeat in ("again", "other_body") and last is not None:
            request = last
            if repeat == "other_body":
                other = Decimal(request.amount) + Decimal(1)
                request = request.model_copy(update={"amount": format(other, "f")})
        else:
            fresh = self.refund_request(order_id, how, fraction)
            if fresh is None:
                return
            request = self.last_refund[order_id] = fresh
        fired_before = len(self.stack.wire.fired)

        async def refund() -> None:
            try:
                await self.stack.service.refunds.refund(request)
                tally(f"refund admitted: {how}")
            except QrpayError as exc:
                if not self.refused_as_expected(exc, REFUND_REFUSED, fired_before, "refund"):
                    raise

        async def twice() -> None:
            await asyncio.gather(refund(), refund())

        self.run(twice() if repeat == "double" else refund())

    def refund_request(self, order_id: str, how: str, fraction: Decimal) -> RefundRequest | None:
        ledger = self.run(self.stack.ledger(order_id))
        currency = ledger["currency"]
        places = Decimal(1).scaleb(-minor_units(currency))

        def text(value: Decimal) -> str:
            return format(value.quantize(places, rounding="ROUND_DOWN"), "f")

        self.refund_ids += 1
        refund_id = f"rf-{self.refund_ids:05d}"
        paid = [p for p in ledger["payments"] if p["state"] == "paid"]
        if how == "unpaid":
            others = [p for p in ledger["payments"] if p["state"] != "paid"]
            if not others:
                return None
            return RefundRequest(
                order_id=order_id,
                refund_id=refund_id,
                amount="1",
                payment_id=others[0]["payment_id"],
            )
        if how == "spread" or not paid:
            left = Decimal(ledger["paid"]) - Decimal(ledger["refunded"])
            tips = Decimal(ledger["tips"]) - Decimal(ledger["refunded_tips"])
            amount = text(left * fraction)
            if Decimal(amount) <= 0:
                amount = "1"  # nothing paid: refused
            return RefundRequest(
                order_id=order_id, refund_id=refund_id, amount=amount, tip=text(tips * fraction)
            )
        payment = paid[-1]
        left = Decimal(payment["amount"]) - Decimal(payment["refunded"])
        tip_left = Decimal(payment["tip"]) - Decimal(payment["refunded_tip"])
        if how == "too_much":
            left += 1
        amount, tip = text(left * fraction), text(tip_left * fraction)
        if how == "tip_only":
            amount = "0"
        if Decimal(amount) <= 0 and Decimal(tip) <= 0:
            return None
        return RefundRequest(
            order_id=order_id,
            refund_id=refund_id,
            amount=amount,
            tip=tip,
            payment_id=payment["payment_id"],
        )

    @rule()
    def relay_runs(self) -> None:
        self.run(self.stack.transactions.relay_once())

    @rule(part=st.sampled_from(("reconcile", "report")))
    def relay_part_runs(self, part: str) -> None:
        """Only the relay's reconciliation of pending operations (calls, lookups of unknown
        outcomes), or only its outbox (callbacks onto payments-eda's queue)."""
        if part == "reconcile":
            self.run(self.stack.transactions.process_pending())
        else:
            self.run(self.stack.transactions.deliver_callbacks())

    @rule(pick=st.integers(min_value=0, max_value=20), duplicate=st.booleans())
    def deliver_a_task(self, pick: int, duplicate: bool) -> None:
        """Any pending task, in any order; ``duplicate`` runs it and leaves it queued."""
        pending = self.stack.pending()
        if pending:
            self.run(self.stack.run_job(pending[pick % len(pending)], keep=duplicate))

    @rule(pick=st.integers(min_value=0, max_value=20))
    def old_callback_again(self, pick: int) -> None:
        """A callback delivered before arrives once more, after whatever happened since."""
        seen = self.stack.callbacks_seen
        if seen:
            payload = seen[pick % len(seen)]
            # Raising is the queue retrying it later: nothing may have changed meanwhile.
            with contextlib.suppress(QrpayError):
                self.run(self.stack.handlers.transaction_callback(dict(payload)))

    @rule()
    def sweep_runs(self) -> None:
        """payments-eda's sweep: every payment under way past ``hold_watchdog_seconds`` (or
        being rolled back) is checked and, if its hold never got an outcome, given back."""
        self.run(self.stack.sweep())

    @rule(
        seconds=st.sampled_from((1.0, 31.0, 31.0, TTL_SECONDS + 1.0, HOLD_TTL_SECONDS + 1.0)),
        ttl_job=st.booleans(),
    )
    def time_passes(self, seconds: float, ttl_job: bool) -> None:
        """Time moves on (retry backoff, overdue payments, hold TTL); then eda's TTL job may
        run."""
        self.stack.clock.advance(seconds)
        if ttl_job:
            self.run(service_of(self.stack.apps["eda"], OrderService).close_expired(TTL_SECONDS))

    @rule(failing=st.booleans())
    def cashback_switch(self, failing: bool) -> None:
        self.stack.set_fail_accruals(failing)

    # --- rules: faults ---------------------------------------------------------------------

    @rule(
        target_fault=st.one_of(
            st.tuples(st.sampled_from(ANSWER_TARGETS), ANSWER_FAULTS),
            st.tuples(st.sampled_from(DELAY_TARGETS), st.just(Fault("delayed"))),
        )
    )
    def next_call_goes_wrong(self, target_fault: tuple[str, Fault]) -> None:
        """The next call of an endpoint (or to a downstream: ``<name>:*``) is carried out but
        its answer is lost, or comes late (after something else happened meanwhile); or, to
        transactions, the request itself arrives only later (the caller gave up on it)."""
        target, fault = target_fault
        self.stack.wire.faults[target] = fault

    @rule(pick=st.integers(min_value=0, max_value=20))
    def delayed_request_arrives(self, pick: int) -> None:
        in_flight = self.stack.wire.in_flight
        if in_flight:
            self.run(self.stack.arrive(pick % len(in_flight)))

    @rule(fault=st.sampled_from(("lost", "timeout", "unreachable", "lookup_down")))
    def gateway_goes_wrong(self, fault: str) -> None:
        if fault == "lookup_down":
            self.stack.gateway.lookup_down = True
        else:
            self.stack.gateway.next_call = fault

    # --- settling --------------------------------------------------------------------------

    @rule()
    def settle(self) -> None:
        """Every request arrives, every callback and follow-up runs, every unknown outcome is
        reconciled (time moves past the retry backoff) and the sweep checks every overdue
        payment, until nothing changes any more; then every hold has ended and every order
        is settled. Cashback works again."""
        stack = self.stack
        stack.set_fail_accruals(False)
        order_ids = list(self.every_order)
        before, quiet = (self.run(stack.observe(order_ids)), stack.todo_ids()), 0
        for _ in range(40):
            # Faults already set still hit their next call (once each), here or later.
            while stack.wire.in_flight:
                self.run(stack.arrive(0))
            # Past the retry backoff and the overdue mark alike.
            stack.clock.advance(RETRY_CAP_SECONDS + 1.0)
            self.run(stack.transactions.relay_once())
            for job in stack.pending():
                self.run(stack.run_job(job, keep=False))
            self.run(stack.sweep())
            after = (self.run(stack.observe(order_ids)), stack.todo_ids())
            # A retry that got no answer either changes nothing visible: a few quiet
            # rounds in a row (each past the retry backoff) mean nothing is left to come.
            quiet = quiet + 1 if after == before else 0
            if quiet == 3:
                break
            before = after
        else:  # pragma: no cover - a livelock is a bug of its own
            raise AssertionError(f"still changing after 40 rounds: {after}")
        for seen in after[0][0]:
            self.check_settled(seen)
            self.check_refunds_settled(seen, self.run(stack.cashback_of(seen.order_id)))

    def check_settled(self, seen: Observed) -> None:
        """Once everything is delivered, every payment is paid exactly when its money was
        taken, given back with no money held, or left to a human (a hold that never gets an
        answer, or a settlement the gateway refused for good)."""
        for payment in seen.payments:
            state, ops = payment.state, payment.ops
            for op in ops:
                if op["status"] == "pending":
                    # Only a gateway that never answers (and never carries out) leaves one.
                    assert op["payment_method_id"] == "broken", (payment.payment, ops)
            assert (state == "paid") == payment.cleared, (payment.payment, ops)
            if state == "released":
                assert not payment.holds_money, (payment.payment, ops)
            elif state != "paid":
                hold = next((op for op in ops if op["kind"] == "hold"), None)
                refused = [
                    op
                    for op in ops
                    if op["kind"] in ("clear", "unhold") and op["status"] == "failed"
                ]
                stuck = hold is not None and (hold["status"] == "pending" or bool(refused))
                assert stuck, ("a payment left under way", payment.payment, ops)
                tally("settled: a payment was left to a human")
            tally(f"settled: a payment was {state}")
            for hold in [op for op in ops if is_done(op, "hold")]:
                settlements = [
                    op
                    for op in ops
                    if op["target"] == hold["operation_id"] and op["kind"] != "hold"
                ]
                if any(op["status"] == "succeeded" for op in settlements):
                    continue  # cleared or released
                # Otherwise the gateway refused to settle it for good: a human's problem,
                # kept under way so nobody pays it twice and the guest is not told it failed.
                assert settlements, ("a hold neither cleared nor released", payment.payment, ops)
                assert all(op["status"] == "failed" for op in settlements), ops
                assert hold["payment_method_id"] == "stuck", ops
        tally(f"settled: an order was {seen.order['status']}")

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def money_is_consistent(self) -> None:
        observed, accruals = self.run(self.stack.observe(list(self.every_order)))
        per_key: dict[str, int] = {}
        for accrual in accruals:
            per_key[accrual["order_id"]] = per_key.get(accrual["order_id"], 0) + 1
        # Cashback at most once per payment.
        assert all(count == 1 for count in per_key.values()), accruals
        for seen in observed:
            tally(f"an order was {seen.order['status']}")
            for payment in seen.payments:
                self.check_payment(seen, payment)
            self.check_order(seen)
            self.check_tokens(seen)
            self.check_cashback(seen, accruals)
            self.check_refunds(seen, self.run(self.stack.cashback_of(seen.order_id)))
        for balance in self.run(self.stack.balances()):
            # What a reversal cannot take is a debt, never a negative balance.
            assert Decimal(balance["amount"]) >= 0, balance
            assert Decimal(balance["debt"]) >= 0, balance

    def check_order(self, seen: Observed) -> None:
        """Together the payments never take more than the bill, nor an item twice; the order
        is PAYED exactly when its cleared payments cover the total."""
        order, ledger = seen.order, seen.ledger
        total = Decimal(ledger["total"])
        assert order["status"] == ledger["status"], (order, ledger)
        assert ledger["currency"] == order["bill"]["currency"], (order, ledger)
        # The bill's parts the gateway took, tips apart, never exceed the total.
        cleared = [p for p in seen.payments if p.cleared]
        assert sum((p.amount for p in cleared), Decimal(0)) <= total, (order, ledger)
        paid = sum((p.amount for p in seen.payments if p.state == "paid"), Decimal(0))
        held = sum(
            (p.amount for p in seen.payments if p.state not in ("paid", "released")), Decimal(0)
        )
        assert Decimal(ledger["paid"]) == paid, ledger
        assert Decimal(ledger["held"]) == held, ledger
        assert paid + held <= total, ledger
        if order["status"] not in ("CANCELED", "CLOSED"):
            assert (order["status"] == "PAYED") == (paid >= total), (order, ledger)
            in_progress = held > 0 and paid + held >= total and paid < total
            assert (order["status"] == "PAYMENT_IN_PROGRESS") == in_progress, (order, ledger)
        elif paid or held:
            raise AssertionError(("an order closed with money on it", order, ledger))
        # An item is in at most one payment that holds or took money (or that eda reserves).
        taken: dict[int, str] = {}
        for payment in seen.payments:
            if payment.holds_money or payment.state != "released":
                for item in payment.payment["items"]:
                    assert item not in taken, ("an item in two payments", item, taken, ledger)
                    taken[item] = payment.id
        # eda numbers the payments as they clear: 1, 2, ... with no gap and no repeat.
        seqs = sorted(p.payment["paid_seq"] for p in seen.payments if p.state == "paid")
        assert seqs == list(range(1, len(seqs) + 1)), ledger
        if paid:
            tally(f"{len([p for p in seen.payments if p.state == 'paid'])} payments paid")

    def check_tokens(self, seen: Observed) -> None:
        """One payment per token: every payment is the one of a token a guest sent, or of a
        request that sent none (no more of those than such requests)."""
        tokens = self.tokens_used.get(seen.order_id, set())
        ids = {payment_id_for(seen.order_id, t) for t in tokens}
        untokened = [p for p in seen.payments if p.id not in ids]
        assert len(untokened) <= self.tokenless.get(seen.order_id, 0), (
            "a payment no token or tokenless request accounts for",
            seen.ledger,
        )

    def check_payment(self, seen: Observed, payment: PaymentSeen) -> None:
        """One payment's money: what transactions recorded is what the gateway did; at most
        one hold and one charge; money taken only for a payment not given back, in the
        order's currency."""
        for op in payment.ops:
            truth = payment.gateway_status(op)
            if op["status"] in ("succeeded", "failed"):
                # A timeout or a lost answer is never recorded as a failure (nor a success).
                assert truth == op["status"], (truth, op, payment.ops)
            elif op["status"] == "canceled":
                # Voided before it was sent: the gateway never saw it, no money moved.
                assert truth is None, (truth, op, payment.ops)
        assert len(live_holds(payment.ops)) <= 1, payment.ops
        assert len([op for op in payment.ops if is_done(op, "clear")]) <= 1, payment.ops
        charges = payment.done_at_gateway("clear")
        assert len(charges) <= 1, (charges, payment.ops)
        if payment.currency is not None:
            assert payment.currency == seen.ledger["currency"], (payment.payment, seen.ledger)
        if charges:
            assert charges == [f"{payment.invoice}:{payment.id}.clear"], (charges, payment.ops)
            # Taken: the payment is paid, or its clear's callback is on the way.
            assert payment.state != "released", (payment.payment, payment.ops)

    def check_cashback(self, seen: Observed, accruals: list[dict[str, Any]]) -> None:
        """Cashback: once per paid payment, on its bill part, the order's cap shared in the
        order eda numbered the payments as they cleared."""
        keys = {f"{seen.order_id}.{p.id}": p for p in seen.payments}
        earned = [a for a in accruals if a["order_id"] in keys]
        paid = sorted(
            (p for p in seen.payments if p.state == "paid"), key=lambda p: p.payment["paid_seq"]
        )
        expected = allocate_cashback(
            [(p.id, p.amount) for p in paid],
            self.stack.runtime.config.restaurant("rest-1"),
            self.stack.runtime.config.cashback,
        )
        for accrual in earned:
            payment = keys[accrual["order_id"]]
            assert payment.state == "paid", (accrual, payment.payment)
            assert Decimal(accrual["amount"]) == expected[payment.id], (accrual, expected)
            assert Decimal(accrual["amount"]) <= cashback(payment.amount), accrual
        on_order = sum((Decimal(a["amount"]) for a in earned), Decimal(0))
        assert on_order <= CASHBACK_CAP, ("cashback above the order's cap", earned, seen.ledger)
        if earned:
            tally(f"cashback on {len(earned)} payments")

    def check_refunds(self, seen: Observed, cashback_of_order: dict[str, Any]) -> None:
        """A refund never gives back more than its payment's clear took (at transactions and
        at the gateway); eda's record never runs ahead of transactions'; a part eda calls
        failed moved no money; cashback takes back at most what it gave, and only for a
        refunded part."""
        parts = {part["part_id"]: part for part in seen.ledger["refunds"]}
        for payment in seen.payments:
            refund_ops = [op for op in payment.ops if op["kind"] == "refund"]
            cleared = sum(
                (Decimal(op["amount"]) for op in payment.ops if is_done(op, "clear")), Decimal(0)
            )
            admitted = sum(
                (Decimal(op["amount"]) for op in refund_ops if op["status"] != "failed"),
                Decimal(0),
            )
            assert admitted <= cleared, ("refunds above the clear", payment.ops)
            amounts = {f"{payment.invoice}:{op['operation_id']}": op for op in refund_ops}
            given_back = sum(
                (Decimal(amounts[key]["amount"]) for key in payment.done_at_gateway("refund")),
                Decimal(0),
            )
            assert given_back <= cleared, ("the gateway gave back more", payment.ops)
            succeeded = sum(
                (Decimal(op["amount"]) for op in refund_ops if op["status"] == "succeeded"),
                Decimal(0),
            )
            record = payment.payment
            refunded = Decimal(record["refunded"]) + Decimal(record["refunded_tip"])
            assert refunded <= succeeded, ("eda ahead of transactions", record, refund_ops)
            assert Decimal(record["refunded"]) <= payment.amount, record
            assert Decimal(record["refunded_tip"]) <= Decimal(record["tip"]), record
            by_id = {op["operation_id"]: op for op in refund_ops}
            for part in parts.values():
                if part["payment_id"] != payment.id:
                    continue
                op = by_id.get(part["part_id"])
                if op is not None:
                    asked = Decimal(part["amount"]) + Decimal(part["tip"])
                    assert Decimal(op["amount"]) == asked, (part, op)
                if part["state"] == "refunded":
                    assert op is not None, part
                    assert op["status"] == "succeeded", (part, op)
                elif part["state"] == "failed":
                    assert op is None or op["status"] == "failed", (part, op)
                tally(f"a refund part was {part['state']}")
        accrued = {a["order_id"]: Decimal(a["amount"]) for a in cashback_of_order["accruals"]}
        taken: dict[str, Decimal] = {}
        for reversal in cashback_of_order["reversals"]:
            key = reversal["accrual_key"]
            taken[key] = taken.get(key, Decimal(0)) + Decimal(reversal["amount"])
            part = parts.get(reversal["reversal_id"])
            assert part is not None, reversal
            assert part["state"] == "refunded", (reversal, part)
            tally("cashback taken back")
        for key, total in taken.items():
            assert total <= accrued[key], ("cashback taken back above the accrual", key)

    def check_refunds_settled(self, seen: Observed, cashback_of_order: dict[str, Any]) -> None:
        """Once everything is delivered every refund part has its outcome, eda's record of
        each payment's refunds is transactions', and every refunded part whose payment
        earned cashback took back its proportion of it."""
        for part in seen.ledger["refunds"]:
            assert part["state"] in ("refunded", "failed"), ("a refund left under way", part)
        for payment in seen.payments:
            refund_ops = [op for op in payment.ops if op["kind"] == "refund"]
            assert all(op["status"] != "pending" for op in refund_ops), refund_ops
            succeeded = sum(
                (Decimal(op["amount"]) for op in refund_ops if op["status"] == "succeeded"),
                Decimal(0),
            )
            record = payment.payment
            refunded = Decimal(record["refunded"]) + Decimal(record["refunded_tip"])
            assert refunded == succeeded, (record, refund_ops)
        accrued = {a["order_id"]: Decimal(a["amount"]) for a in cashback_of_order["accruals"]}
        reversed_ = {r["reversal_id"]: Decimal(r["amount"]) for r in cashback_of_order["reversals"]}
        payments = {p.id: p for p in seen.payments}
        for part in seen.ledger["refunds"]:
            if part["state"] != "refunded":
                continue
            payment = payments[part["payment_id"]]
            key = f"{seen.order_id}.{payment.invoice}"
            if key not in accrued:
                continue
            expected = reversal_of(
                accrued[key], Decimal(part["amount"]), payment.amount, seen.ledger["currency"]
            )
            assert reversed_.get(part["part_id"], Decimal(0)) == expected, (part, expected)


# A failure is shrunk for up to hypothesis' own limit of five minutes: let it report.
pytestmark = pytest.mark.timeout(480)

TestPaymentLifecycle = PaymentLifecycle.TestCase
TestPaymentLifecycle.settings = settings(
    max_examples=20,
    stateful_step_count=60,
    deadline=None,
    # No "explain" phase: its line tracer makes a failing run outlast pytest's timeout.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)


def test_hold_arriving_after_give_back() -> None:
    """The machine's shortest run into a double charge it found, replayed step by step: the
    guest's hold request reaches transactions only after the payment was overdue and the
    sweep gave the order back (its void found no invoice, so nothing recorded it as voided).
    The hold was made and cleared on an order that was WAITING, and paying again charged the
    guest twice. Now the request carries ``not_after`` (half of hold_watchdog_seconds after
    the start) and transactions refuses it, late, with ``request_expired``."""
    state = PaymentLifecycle()
    try:
        state.bills_on_every_table(amount="100.00")
        state.next_call_goes_wrong(target_fault=("start_hold", Fault("delayed")))
        state.guest_pays(card="good", table="t1", tokens="fresh")
        state.time_passes(seconds=31.0, ttl_job=False)
        state.sweep_runs()
        state.delayed_request_arrives(pick=0)
        state.relay_runs()
        state.relay_runs()
        state.money_is_consistent()
    finally:
        state.teardown()


def test_the_last_share_pays_the_order() -> None:
    """The machine's first find on a split bill, replayed: the clear's callback of the share
    that paid the bill in full completed it in eda, then failed counting the paid order
    (``qrpay_orders_paid_by_qr`` is counted per restaurant and the share flow gave no label):
    a ValueError, not an error the queue retries knowingly, so the task failed after the
    order was PAYED and before the share's cashback was accrued."""
    state = PaymentLifecycle()
    try:
        state.bills_on_every_table(amount="100.00")
        state.guests_pay_shares(
            table="t1", guests=[GuestShare(way="rest", card="good", tip="none")]
        )
        state.settle()
        state.money_is_consistent()
        seen = state.run(state.stack.observe([state.orders["t1"]]))[0][0]
        assert seen.order["status"] == "PAYED"
        assert [p.state for p in seen.payments] == ["paid"]
    finally:
        state.teardown()


def replay(steps: Callable[[PaymentLifecycle], None]) -> PaymentLifecycle:
    """Run ``steps`` on a fresh machine with its invariants after each call, then settle."""
    state = PaymentLifecycle()
    try:
        state.bills_on_every_table(amount="100.00")
        steps(state)
        state.money_is_consistent()
        state.settle()
        state.money_is_consistent()
    finally:
        state.teardown()
    return state


def good(way: str = "equal", **kwargs: Any) -> GuestShare:
    return GuestShare(way=way, card=kwargs.pop("card", "good"), tip="none", **kwargs)


def test_a_double_tap_pays_once() -> None:
    """Two taps at once and a retry after the answer, the same token each time: one payment
    (``check_tokens``), for the whole bill and for a share alike; items on a choice that is
    not by items are refused."""

    def steps(state: PaymentLifecycle) -> None:
        state.guests_pay_shares(table="t1", guests=[good(parts=4, taps="stray_items")])
        state.guests_pay_shares(table="t1", guests=[good(parts=4, taps="double")])
        state.guests_pay_shares(table="t1", guests=[good(parts=4, taps="retry")])
        state.money_is_consistent()
        state.guest_pays(table="t2", card="good", tokens="double")
        state.guest_pays(table="t2", card="good", tokens="repeat")
        state.guest_pays(table="t2", card="good", tokens="other_body")
        state.relay_runs()
        ledger = state.run(state.stack.ledger(state.orders["t1"]))
        assert len(ledger["payments"]) == 2, ledger
        assert len(state.run(state.stack.ledger(state.orders["t2"]))["payments"]) == 1

    replay(steps)


def test_a_bill_replaced_down_to_what_is_paid_is_paid() -> None:
    """A share paid, then the POS replaces the bill: below it is refused; exactly it makes
    the order PAYED at once; another currency is refused."""

    def steps(state: PaymentLifecycle) -> None:
        state.guests_pay_shares(table="t1", guests=[good(parts=2)])
        state.settle()
        state.pos_replaces_bill(table="t1", how="below")
        state.pos_replaces_bill(table="t1", how="other_currency")
        state.money_is_consistent()
        state.pos_replaces_bill(table="t1", how="equal_to_paid")
        state.money_is_consistent()
        assert state.run(state.stack.order(state.orders["t1"]))["status"] == "PAYED"

    replay(steps)


def test_the_cap_is_shared_in_the_order_payments_cleared() -> None:
    """Three shares of a bill whose cashback is above the cap, the last one cleared by an eda
    host whose clock runs a minute behind: each earns what eda's sequence leaves it under
    the cap, never what the clocks' order would."""

    def steps(state: PaymentLifecycle) -> None:
        state.pos_sends_bill(table="t1", amount="12000.00")
        for behind in (0.0, 0.0, -60.0):
            state.stack.clock.advance(behind)
            state.guests_pay_shares(table="t1", guests=[good(parts=3)])
            state.relay_runs()
            for job in state.stack.pending():
                state.run(state.stack.run_job(job, keep=False))

    replay(steps)


def test_the_sweep_pages_past_payments_it_must_leave() -> None:
    """Two payments whose holds wait on a gateway that never answers fill the sweep's first
    page (it leaves them to their callbacks); a third, whose hold never arrived, is on the
    next page and is still given back."""

    def steps(state: PaymentLifecycle) -> None:
        for _ in range(2):
            state.guests_pay_shares(table="t1", guests=[good(parts=4, card="broken")])
            state.relay_runs()
            state.time_passes(seconds=1.0, ttl_job=False)
        state.next_call_goes_wrong(target_fault=("start_hold", Fault("delayed")))
        state.guests_pay_shares(table="t1", guests=[good(parts=4)])
        state.time_passes(seconds=31.0, ttl_job=False)
        state.sweep_runs()
        ledger = state.run(state.stack.ledger(state.orders["t1"]))
        assert [p["state"] for p in ledger["payments"]] == ["holding", "holding", "released"]

    replay(steps)
