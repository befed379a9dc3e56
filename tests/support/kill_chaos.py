"""The harness of tests/faults/test_kill_chaos.py: guests paying through nginx, chaos loops
SIGKILLing and restarting targets, and the check of every order against the databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg

from qrpay.kernel.config import load_yaml
from qrpay.kernel.queue import libpq_url
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.payments_eda.schemas import GUEST_MESSAGES, MessageKey
from qrpay_tools.cluster import supervised
from qrpay_tools.cluster.run import WORKER, Layout, alive, read_pids, wait_restarted
from tests.support.tickets import ticket_headers

ORDERS = 200
GUESTS = 12  # paying at the same time, at most
# Guest n sits down no earlier than n * PACE seconds in: the payments span at least 70 s even
# on a fast machine, time for several kills of each target while guests pay.
PACE = 0.35
AMOUNT = "1000.00"
CASHBACK = Decimal(300)  # rest-1: 30%
TAPS = 3  # a guest taps Pay at most this many times
POLL_FOR = 20.0  # seconds a guest waits for PAYED after a tap before walking away
TARGETS = ("payments-eda-1", WORKER)
MIN_KILLS = 3  # per target
# Seconds between an instance being ready again and its next kill. The worker lives longer
# on average: some of its lives must outlast stalled-task recovery (a dead worker's tasks are
# taken back once its heartbeat is 10 s old; the live worker looks every 5 s).
KILL_AFTER = {"payments-eda-1": (1.0, 6.0), WORKER: (2.0, 12.0)}
BUSY_WAIT = 3.0  # seconds a kill may wait for the target to have work in flight
# hold_watchdog_seconds, after which the sweep looks at a payment under way (30 s by
# default): shorter, so that a payment whose pay request died before its hold is given back
# within the test, yet well above the pay request's whole budget (payments.pay_budget_ms,
# 6 s), so the sweep does not roll back payments that are merely slow.
WATCHDOG_SECONDS = 15
CONVERGE_TIMEOUT = 180.0
RETRYABLE = frozenset({502, 503, 504})
LIVE_HOLD = frozenset({"pending", "succeeded"})
READY = GUEST_MESSAGES[MessageKey.READY]["en"]
DEV_SECDIST = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")
API_KEY = DEV_SECDIST["api_keys"][0]["key"]
DEMO = load_yaml(REPO_DEV_CONFIG / "config.yaml")["demo"]
CARD = next(card["id"] for card in DEMO["cards"] if card["token"].startswith("sandbox-ok-"))


@dataclass
class Kill:
    target: str
    at: float  # seconds since the first guest started
    pays_in_flight: int  # pay requests the guests were waiting on
    guests_paying: int  # guests between their first tap and their outcome
    jobs_running: int  # queue tasks the live worker runs
    restart_seconds: float = 0.0  # from the kill to supervisord having it ready again


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    pays_in_flight: int = 0
    guests_paying: int = 0
    taps: int = 0
    tap_errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started


class Databases:
    """One connection per database, opened before the load and reopened if it breaks.

    PostgreSQL is shared and its connection slots run short under load: a probe that
    connected anew every second could be refused ("too many clients") when it matters.
    """

    def __init__(self, layout: Layout) -> None:
        secdist = load_yaml(layout.var / "secdist.yaml")
        self.urls = {**secdist["databases"], "queue": secdist["queue_database"]}
        self.connections: dict[str, psycopg.Connection[Any]] = {}
        for name in ("eda", "transactions", "cashback", "queue"):
            self._connect(name)

    def _connect(self, name: str) -> psycopg.Connection[Any]:
        connection = psycopg.connect(libpq_url(self.urls[name]), autocommit=True)
        self.connections[name] = connection
        return connection

    def sql(self, name: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
        for attempt in range(10):
            try:
                connection = self.connections.get(name)
                if connection is None or connection.closed:
                    connection = self._connect(name)
                return list(connection.execute(query, params).fetchall())
            except psycopg.OperationalError:
                if attempt == 9:
                    raise
                self.connections.pop(name, None)
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def pid_of(layout: Layout, name: str) -> int:
    return next(int(str(e["pid"])) for e in read_pids(layout) if e["name"] == name)


def log_tails(layout: Layout, names: tuple[str, ...], chars: int = 3000) -> str:
    parts = []
    for name in names:
        path = layout.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        parts.append(f"--- {name}\n{text[-chars:]}")
    return "\n".join(parts)


# --- the check ----------------------------------------------------------------------------

# Each payment has its own invoice since issue 18 (a whole-bill payment before it keeps the
# order's), and its accrual is keyed ``<order>.<payment>`` (the order's id before): both
# read by order id, for a list of them.
OPERATIONS_BY_ORDER = (
    "SELECT i.order_id, o.operation_id, o.kind, o.status, o.target, o.reason"
    " FROM operations o JOIN invoices i ON i.invoice_id = o.invoice_id"
    " WHERE i.order_id = ANY(%s) ORDER BY i.order_id, i.created_at, o.position"
)
ACCRUALS_BY_ORDER = (
    "SELECT split_part(order_id, '.', 1), amount FROM accruals"
    " WHERE split_part(order_id, '.', 1) = ANY(%s)"
)


def violations_of(dbs: Databases, orders: list[str]) -> list[tuple[str, str, Any]]:
    """What is wrong with each order now; empty once every order reached an allowed end."""
    statuses = dict(dbs.sql("eda", "SELECT id, status FROM orders WHERE id = ANY(%s)", orders))
    ops: dict[str, list[tuple[str, str, str, str | None]]] = defaultdict(list)
    for order_id, operation_id, kind, status, target, _ in dbs.sql(
        "transactions", OPERATIONS_BY_ORDER, orders
    ):
        ops[order_id].append((operation_id, kind, status, target))
    accrued: dict[str, list[Decimal]] = defaultdict(list)
    for order_id, amount in dbs.sql("cashback", ACCRUALS_BY_ORDER, orders):
        accrued[order_id].append(Decimal(amount))

    found: list[tuple[str, str, Any]] = []
    for order_id in orders:
        status = statuses.get(order_id)
        mine = ops[order_id]
        kinds = [(kind, state) for _, kind, state, _ in mine]
        # A canceled hold never reached the gateway (voided before it was sent): no money moved.
        charged = [entry for entry in kinds if entry != ("hold", "canceled")]
        if status == "PAYED":
            if charged != [("hold", "succeeded"), ("clear", "succeeded")]:
                found.append((order_id, "PAYED, operations", kinds))
            if accrued[order_id] != [CASHBACK]:
                found.append((order_id, "PAYED, accruals", accrued[order_id]))
            continue
        if status != "WAITING":
            found.append((order_id, "status", status))
        released = {
            target for _, kind, state, target in mine if (kind, state) == ("unhold", "succeeded")
        }
        for operation_id, kind, state, _ in mine:
            if kind == "hold" and state in LIVE_HOLD and operation_id not in released:
                found.append((order_id, "unpaid, live hold", kinds))
            if kind == "clear" and state != "failed":
                found.append((order_id, "unpaid, clear", kinds))
            if state == "pending":
                found.append((order_id, "unpaid, pending operation", kinds))
        if accrued[order_id]:
            found.append((order_id, "unpaid, accruals", accrued[order_id]))
    return found


def tasks_running(dbs: Databases) -> int:
    """Tasks the newest worker (the live one) is running; a killed one's stay `doing` too."""
    ((count,),) = dbs.sql(
        "queue",
        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
        " AND worker_id = (SELECT max(id) FROM procrastinate_workers)",
    )
    return int(count)


def recovered(layout: Layout) -> int:
    """Stalled tasks of killed workers taken back so far (the worker's log says each)."""
    return (
        (layout.logs / f"{WORKER}.log").read_text(errors="replace").count("stalled_task_recovered")
    )


def queue_jobs(dbs: Databases, *statuses: str) -> list[tuple[Any, ...]]:
    return dbs.sql(
        "queue",
        "SELECT id, task_name, status, attempts, scheduled_at FROM procrastinate_jobs"
        " WHERE status::text = ANY(%s) ORDER BY id",
        list(statuses),
    )


# --- the guests ---------------------------------------------------------------------------


class Guests:
    """GUESTS guests at a time, guest n sitting down n * PACE s in: the POS creates the
    order, the guest pays it with the demo card, tapping again after a failure."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        layout: Layout,
        stats: Stats,
        seed: int,
        orders: int = ORDERS,
        taps: int = TAPS,
        poll_for: float = POLL_FOR,
    ) -> None:
        self.client = client
        self.orders = orders
        self.taps = taps
        self.poll_for = poll_for
        self.pos = layout.url(layout.nginx_ports["iiko-integration"])
        self.payer = layout.url(layout.nginx_ports["payments-eda"])
        self.stats = stats
        self.seed = seed
        self.order_ids: list[str] = []
        self.seen_paid: set[str] = set()  # orders a guest was told are paid

    async def create_order(self, index: int) -> tuple[str, str]:
        body = {
            "client_id": "rest-1",
            "internal_order_id": f"chaos-{self.seed}-{index}",
            "bill": {
                "currency": "RUB",
                "amount": AMOUNT,
                "elements": [{"name": "Dinner", "amount": AMOUNT}],
            },
        }
        for _ in range(20):  # the POS sends the bill again: idempotent on the iiko id
            try:
                answer = await self.client.post(
                    f"{self.pos}/orders", json=body, headers={"X-API-Key": API_KEY}
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if answer.status_code in RETRYABLE:
                await asyncio.sleep(0.5)
                continue
            assert answer.status_code == 200, answer.text
            link = next(
                line["value"] for line in answer.json()["bill_lines"] if line["type"] == "qr-code"
            )
            query = parse_qs(urlsplit(link).query)
            return query["order_id"][0], query["hmac"][0]
        raise AssertionError(f"the POS could not create order {index}")

    async def status_of(self, order_id: str, signature: str) -> tuple[str, str] | None:
        try:
            answer = await self.client.get(
                f"{self.payer}/4.0/payments/v1/orders",
                params={"order_id": order_id, "hmac": signature},
                headers={
                    "X-Request-Language": "en",
                    **ticket_headers("api-proxy", to="payments-eda"),
                },
            )
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            if answer.status_code not in RETRYABLE:
                self.stats.unexpected.append(f"status {answer.status_code}: {answer.text}")
            return None
        body = answer.json()
        return str(body["status"]), str(body["message"])

    async def pay(self, order_id: str, signature: str) -> str:
        """One guest's taps and waits; returns how it ended for the guest."""
        stats = self.stats
        for _ in range(self.taps):
            stats.taps += 1
            stats.pays_in_flight += 1
            try:
                answer = await self.client.post(
                    f"{self.payer}/4.0/payments/v1/orders",
                    json={
                        "service": "restaurant",
                        "order_id": order_id,
                        "hmac": signature,
                        "payment_method": {"type": "card", "id": CARD},
                        "amount": AMOUNT,
                    },
                    headers={
                        "X-Yandex-UID": DEMO["user_id"],
                        "X-Request-Language": "en",
                        **ticket_headers("api-proxy", to="payments-eda"),
                    },
                )
            except httpx.HTTPError as exc:
                stats.tap_errors[type(exc).__name__] += 1
                await asyncio.sleep(random.uniform(0.3, 1.0))
                continue
            finally:
                stats.pays_in_flight -= 1
            if answer.status_code in RETRYABLE:
                stats.tap_errors[str(answer.status_code)] += 1
                await asyncio.sleep(random.uniform(0.3, 1.0))
                continue
            if answer.status_code == 409 and answer.json().get("code") == "already_paid":
                self.seen_paid.add(order_id)
                return "PAYED"
            if answer.status_code != 200:
                stats.unexpected.append(f"pay {answer.status_code}: {answer.text}")
                return "refused"
            deadline = time.monotonic() + self.poll_for
            seen: tuple[str, str] | None = None
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)  # X-Polling-Delay
                seen = await self.status_of(order_id, signature)
                if seen is None:
                    continue
                if seen[0] == "PAYED":
                    self.seen_paid.add(order_id)
                    return "PAYED"
                if seen[0] == "DECLINED" or seen[1] == READY:
                    break  # the attempt ended without money: tap again
            else:
                return "walked away waiting"
        return "gave up"

    async def guest(self, queue: asyncio.Queue[int]) -> None:
        stats = self.stats
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await asyncio.sleep(stats.started + index * PACE - time.monotonic())
            order_id, signature = await self.create_order(index)
            self.order_ids.append(order_id)
            stats.guests_paying += 1
            try:
                stats.outcomes[await self.pay(order_id, signature)] += 1
            finally:
                stats.guests_paying -= 1

    async def all(self) -> None:
        work: asyncio.Queue[int] = asyncio.Queue()
        for index in range(self.orders):
            work.put_nowait(index)
        await asyncio.gather(*(self.guest(work) for _ in range(GUESTS)))


# --- the chaos ----------------------------------------------------------------------------


@dataclass
class Chaos:
    """A loop per target: SIGKILL at a random moment with work in flight, wait for supervisord
    to have it ready again, again, until ``done`` is set."""

    layout: Layout
    dbs: Databases
    stats: Stats
    seed: int
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def jobs_running(self) -> int:
        return await asyncio.to_thread(tasks_running, self.dbs)

    async def busy(self, target: str) -> int:
        if target == WORKER:
            return await self.jobs_running()
        return self.stats.pays_in_flight

    async def loop(self, target: str) -> None:
        rng = random.Random(f"{self.seed}:{target}")
        done, stats, layout = self.done, self.stats, self.layout
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), rng.uniform(*KILL_AFTER[target]))
            # A random moment, moved (by up to BUSY_WAIT) to one where the target has work in
            # flight: a pay request waiting on an answer, or a queue task running.
            deadline = time.monotonic() + BUSY_WAIT
            while not done.is_set() and time.monotonic() < deadline:
                if await self.busy(target):
                    break
                await asyncio.sleep(0.05)
            if done.is_set():
                return
            running = await self.jobs_running()
            pid = pid_of(layout, target)
            assert alive(pid), (
                f"{target} (pid {pid}) died on its own\n{log_tails(layout, (target,))}"
            )
            offset = supervised.log_size(layout.logs / f"{target}.log")
            began = time.monotonic()
            os.killpg(pid, signal.SIGKILL)
            kill = Kill(target, stats.now(), stats.pays_in_flight, stats.guests_paying, running)
            stats.kills.append(kill)
            # supervisord starts it again by itself: nothing here restarts anything.
            await asyncio.to_thread(wait_restarted, layout, target, pid, log_offset=offset)
            kill.restart_seconds = time.monotonic() - began


@dataclass
class ChaosRun:
    """What the guests and the chaos loops left behind."""

    stats: Stats
    order_ids: list[str]
    seen_paid: set[str]
    paying_for: float  # seconds from the first guest to the last outcome
    recovered_in_chaos: int  # stalled tasks taken back before the last guest left


async def pay_under_chaos(layout: Layout, dbs: Databases, seed: int) -> ChaosRun:
    """ORDERS guests pay while every target is killed and restarted; returns once the last
    guest is done and everything killed runs again."""
    stats = Stats()
    chaos = Chaos(layout, dbs, stats, seed)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(20.0), limits=httpx.Limits(max_connections=4 * GUESTS)
    ) as client:
        guests = Guests(client, layout, stats, seed)
        stats.started = time.monotonic()
        chaos_tasks = [asyncio.create_task(chaos.loop(target)) for target in TARGETS]
        paying = asyncio.create_task(guests.all())
        try:
            # A chaos loop ends before the guests only when it failed (a restart did not come
            # up): that fails the test now, not after the last payment.
            await asyncio.wait([paying, *chaos_tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in chaos_tasks:
                if task.done():
                    task.result()
                    raise AssertionError("a chaos loop stopped while the guests were paying")
            await paying
            paying_for = stats.now()
            recovered_in_chaos = recovered(layout)
            chaos.done.set()
            # The chaos loops finish the restart they are in: everything killed runs again.
            await asyncio.gather(*chaos_tasks)
        finally:
            chaos.done.set()
            for task in [paying, *chaos_tasks]:
                task.cancel()
            await asyncio.gather(paying, *chaos_tasks, return_exceptions=True)
    return ChaosRun(stats, guests.order_ids, guests.seen_paid, paying_for, recovered_in_chaos)


async def converge(
    dbs: Databases, order_ids: list[str]
) -> tuple[list[tuple[str, str, Any]], list[tuple[Any, ...]], float]:
    """Wait up to CONVERGE_TIMEOUT for no violation and no task left to run; returns the
    violations, the tasks left and the seconds it took."""
    restarted = time.monotonic()
    deadline = restarted + CONVERGE_TIMEOUT
    while True:
        found = await asyncio.to_thread(violations_of, dbs, order_ids)
        left = await asyncio.to_thread(queue_jobs, dbs, "todo", "doing")
        if not found and not left:
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    return found, left, time.monotonic() - restarted


def print_report(
    run: ChaosRun,
    layout: Layout,
    found: list[tuple[str, str, Any]],
    failed: list[tuple[Any, ...]],
    left: list[tuple[Any, ...]],
    statuses: Counter[str],
    to_converge: float,
    test_seconds: float,
) -> None:
    stats, order_ids = run.stats, run.order_ids
    kills = Counter(kill.target for kill in stats.kills)
    while_paying = [kill for kill in stats.kills if kill.guests_paying > 0]
    print(
        f"kill chaos: {len(order_ids)} orders, {statuses['PAYED']} PAYED,"
        f" {len(order_ids) - statuses['PAYED']} unpaid;"
        f" kills: {', '.join(f'{t} {kills[t]}' for t in TARGETS)}"
        f" ({len(while_paying)} while guests were paying,"
        f" {sum(1 for k in stats.kills if k.pays_in_flight)} with pay requests in flight,"
        f" {sum(1 for k in stats.kills if k.target == WORKER and k.jobs_running)} of the worker"
        f" with tasks running); violations: {len(found)}; failed tasks: {len(failed)};"
        f" tasks left: {len(left)}; stalled tasks recovered: {recovered(layout)}"
        f" ({run.recovered_in_chaos} during the chaos);"
        f" converged in {to_converge:.1f}s after the last restart;"
        f" payments took {run.paying_for:.1f}s; test {test_seconds:.0f}s"
    )
    restarts = [kill.restart_seconds for kill in stats.kills]
    print(
        f"guests: {stats.taps} taps, tap errors {dict(stats.tap_errors)},"
        f" outcomes {dict(stats.outcomes)}; back (supervisord) in"
        f" {min(restarts, default=0):.1f}-{max(restarts, default=0):.1f}s"
    )
    for kill in stats.kills:
        print(
            f"  kill {kill.target:20} at {kill.at:6.1f}s: {kill.guests_paying:2} guests paying,"
            f" {kill.pays_in_flight:2} pay requests in flight, {kill.jobs_running:2} tasks"
            f" running; ready again {kill.restart_seconds:.1f}s after the kill"
        )
