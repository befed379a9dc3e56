"""200 payments while transactions is SIGKILLed mid-operation and started again (issue 9).

The payer side as `qrpay serve` processes on PostgreSQL (tests/support/payments_cluster, with
pass-through proxies in front of transactions and cashback, as a load balancer would be),
one `qrpay worker payments-eda`, and the sandbox gateway slowed to GATEWAY_LATENCY_MS a call,
so that operations spend a while at the gateway. Guests pay like the payer page
(``pay_like_the_page``): tap Pay; after a 200 read the order until it is PAYED or back to
WAITING (then tap again); after a 409, a 502/503/504 or a broken connection tap again after
a pause.

KILLS times while the guests pay, the test SIGKILLs transactions' process group and starts
it again a little later: at a random moment after each (KILLS+1)-th of the guests started,
moved (by up to BUSY_WAIT) to one where an operation is at the gateway (claimed, without a
result) while a pay request is on its way. What the dead process had at the gateway stays
pending until its lease runs out (60 s), and the next try asks the gateway about its key
first; a pay request that met the dead process has no definite answer, so the order stays
in progress until the hold's callback or the sweep's void-first rollback settles it.

After the last guest (and the last restart) the test polls, for at most kill_chaos's
CONVERGE_TIMEOUT, until every order is at an allowed end and no queue task is left, then
checks every order with tests/support/kill_chaos's ``violations_of``:

- PAYED: exactly one succeeded hold and one succeeded clear that reached the gateway (a hold
  canceled before it was sent moved no money), and one 30% accrual;
- otherwise WAITING with no live hold, no clear, no pending operation and no accrual;

besides: no queue task failed, and an order a guest was told is paid is PAYED.
QRPAY_CHAOS_SEED=<n> replays the kill moments (the timing of the rest still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.transactions.service import LEASE
from tests.plugins.cluster import running_faulty_cluster
from tests.support.kill_chaos import OPERATIONS_BY_ORDER, converge, queue_jobs
from tests.support.payments_cluster import (
    ClusterDatabases,
    FaultyCluster,
    Patience,
    PayingGuest,
    pay_like_the_page,
    slow_gateway,
)
from tests.support.postgres import DatabaseFactory

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(600)]

PAYMENTS = 200
SPACING = 0.2  # seconds between two guests starting to pay: 40 s of guests
GATEWAY_LATENCY_MS = 1000
KILLS = 6
KILL_JITTER = (0.0, 3.0)  # seconds after the (KILLS+1)-th of the guests started
BUSY_WAIT = 5.0  # seconds a kill may wait for an operation at the gateway and a pay request
DOWN_FOR = (0.3, 2.5)  # seconds transactions stays dead before the restart
# hold_watchdog_seconds, after which the sweep looks at a payment under way (dev: 30 s):
# short, so payments whose hold met a dead transactions are given back within the test,
# yet above a pay request's usual answer time under this load.
WATCHDOG_SECONDS = 15
# A held-up operation waits for its 60 s lease, maybe twice when a kill meets its retry:
# the guests wait long, polling as the page does (X-Polling-Delay 1 s).
PATIENCE = Patience(retry_pause=1.0, poll=1.0, max_taps=20, give_up_after=300.0)
EVIDENCE_LOGS = ("transactions.log", "payments-eda.log", "worker-a.log", "eda.log")


def _configure(config: dict[str, Any]) -> None:
    config.setdefault("payments", {})["hold_watchdog_seconds"] = WATCHDOG_SECONDS
    slow_gateway(config, GATEWAY_LATENCY_MS)


@pytest.fixture
async def killable_cluster(
    tmp_path: Path, pg_database: DatabaseFactory
) -> AsyncIterator[FaultyCluster]:
    async for instance in running_faulty_cluster(tmp_path, pg_database, configure=_configure):
        yield instance


@dataclass
class Kill:
    at: float  # seconds since the first guest started
    at_gateway: int  # operations the killed process had at the gateway when it died
    unreported: int  # results recorded whose callback was not put yet
    orphaned: int  # operations earlier kills left at the gateway, their lease still running
    pays_in_flight: int  # pay requests the guests were waiting on
    guests_paying: int  # guests between their first tap and their outcome
    restart_seconds: float = 0.0  # from the restart to transactions answering /ping


def db_now(dbs: ClusterDatabases) -> datetime:
    ((now,),) = dbs.sql("transactions", "SELECT now()")
    assert isinstance(now, datetime)
    return now


def in_flight(dbs: ClusterDatabases, alive_since: datetime) -> tuple[int, int, int]:
    """In transactions' table: operations the live process (started after ``alive_since``)
    has at the gateway, results whose callback is not put yet, and operations a killed
    process left at the gateway (pending until their lease runs out)."""
    ((at_gateway, unreported, orphaned),) = dbs.sql(
        "transactions",
        "SELECT count(*) FILTER (WHERE status = 'pending' AND claimed_until > %s),"
        " count(*) FILTER (WHERE status <> 'pending' AND callback_sent_at IS NULL),"
        " count(*) FILTER (WHERE status = 'pending' AND claimed_until > now()"
        " AND claimed_until <= %s) FROM operations",
        alive_since + LEASE,
        alive_since + LEASE,
    )
    return int(at_gateway), int(unreported), int(orphaned)


@dataclass
class Run:
    cluster: FaultyCluster
    dbs: ClusterDatabases
    guests: list[PayingGuest]
    rng: random.Random
    alive_since: datetime  # the database's time before the live transactions started
    started: float = 0.0
    guests_started: int = 0
    guests_done: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def pay(self, client: httpx.AsyncClient, index: int, guest: PayingGuest) -> None:
        await asyncio.sleep(self.started + index * SPACING - time.monotonic())
        self.guests_started += 1
        try:
            await pay_like_the_page(self.cluster, client, guest, PATIENCE)
        finally:
            self.guests_done += 1

    def pays_in_flight(self) -> int:
        return sum(guest.tapping for guest in self.guests)

    async def wait_for_work(self) -> None:
        """Until (for at most BUSY_WAIT) transactions has an operation at the gateway while a
        pay request is on its way (it may be at transactions, recording a hold)."""
        deadline = time.monotonic() + BUSY_WAIT
        checked = time.monotonic()
        at_gateway, *_ = await asyncio.to_thread(in_flight, self.dbs, self.alive_since)
        while not (at_gateway and self.pays_in_flight()) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if time.monotonic() - checked > 0.25:
                at_gateway, *_ = await asyncio.to_thread(in_flight, self.dbs, self.alive_since)
                checked = time.monotonic()

    async def kill_and_restart(self, kills: list[Kill]) -> None:
        for number in range(1, KILLS + 1):
            while self.guests_started < number * PAYMENTS // (KILLS + 1):
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(*KILL_JITTER))
            await self.wait_for_work()
            self.cluster.kill("transactions")
            pays_in_flight = self.pays_in_flight()
            # Exact now: a dead process neither claims nor records nor relays.
            busy = await asyncio.to_thread(in_flight, self.dbs, self.alive_since)
            kill = Kill(self.now(), *busy, pays_in_flight, self.guests_started - self.guests_done)
            kills.append(kill)
            await asyncio.sleep(self.rng.uniform(*DOWN_FOR))
            began = time.monotonic()
            self.alive_since = await asyncio.to_thread(db_now, self.dbs)
            await asyncio.to_thread(self.cluster.restart, "transactions")
            kill.restart_seconds = time.monotonic() - began


def evidence(run: Run, order_id: str) -> str:
    """The order's operations and every log line that names it."""
    ops = run.dbs.sql(
        "transactions",
        "SELECT o.invoice_id, o.operation_id, o.kind, o.status, o.target, o.reason,"
        " o.attempts, o.created_at, o.finished_at"
        " FROM operations o JOIN invoices i ON i.invoice_id = o.invoice_id"
        " WHERE i.order_id = %s ORDER BY i.created_at, o.position",
        order_id,
    )
    lines = [f"order {order_id}:", *(f"  op {row}" for row in ops)]
    for name in EVIDENCE_LOGS:
        path = run.cluster.tmp / name
        text = path.read_text(errors="replace") if path.exists() else ""
        lines += [f"  {name}: {line}" for line in text.splitlines() if order_id in line]
    return "\n".join(lines)


async def test_payments_survive_transactions_killed_mid_operation(
    killable_cluster: FaultyCluster,
) -> None:
    cluster = killable_cluster
    seed = int(os.environ.get("QRPAY_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nchaos seed: {seed} (QRPAY_CHAOS_SEED={seed} replays the kill moments)")
    sys.stdout.flush()
    cluster.worker("a")
    guests = [PayingGuest(*cluster.create_order("1000.00")) for _ in range(PAYMENTS)]
    order_ids = [guest.order_id for guest in guests]
    dbs = ClusterDatabases(cluster)
    try:
        run = Run(cluster, dbs, guests, random.Random(seed), db_now(dbs))
        await pay_while_killing(run, order_ids, seed)
    finally:
        dbs.close()


async def pay_while_killing(run: Run, order_ids: list[str], seed: int) -> None:
    kills: list[Kill] = []
    async with httpx.AsyncClient(timeout=30) as client:
        run.started = time.monotonic()
        paying = asyncio.gather(*(run.pay(client, i, g) for i, g in enumerate(run.guests)))
        killing = asyncio.create_task(run.kill_and_restart(kills))
        try:
            await asyncio.gather(paying, killing)
        finally:
            for task in (paying, killing):
                task.cancel()
            await asyncio.gather(paying, killing, return_exceptions=True)
    paying_for = run.now()

    found, left, to_converge = await converge(run.dbs, order_ids)
    failed = await asyncio.to_thread(queue_jobs, run.dbs, "failed")
    status_of = dict(
        run.dbs.sql("eda", "SELECT id, status FROM orders WHERE id = ANY(%s)", order_ids)
    )
    found += [
        (g.order_id, "guest saw PAYED", status_of.get(g.order_id))
        for g in run.guests
        if g.paid and status_of.get(g.order_id) != "PAYED"
    ]
    ops_count = Counter(
        f"{kind}:{status}"
        for _, _, kind, status, _, _ in run.dbs.sql("transactions", OPERATIONS_BY_ORDER, order_ids)
    )
    ((tried_again,),) = run.dbs.sql(
        "transactions",
        "SELECT count(*) FROM operations o JOIN invoices i ON i.invoice_id = o.invoice_id"
        " WHERE i.order_id = ANY(%s) AND o.attempts > 1",
        order_ids,
    )
    taps = Counter(tap for guest in run.guests for tap in guest.taps)
    print(
        f"transactions killed mid-operation: {PAYMENTS} payments, {len(kills)} kills"
        f" ({sum(1 for k in kills if k.at_gateway)} with operations at the gateway,"
        f" {sum(k.at_gateway for k in kills)} in all), {sum(taps.values())} taps"
        f" {dict(sorted(taps.items()))}, given back {sum(g.given_back for g in run.guests)}"
        f" times, {sum(g.gave_up for g in run.guests)} guests gave up; orders"
        f" {dict(Counter(status_of.values()))}; operations {dict(sorted(ops_count.items()))},"
        f" {tried_again} tried more than once; violations: {len(found)}; failed tasks:"
        f" {len(failed)}; tasks left: {len(left)}; guests done in {paying_for:.1f}s,"
        f" converged in {to_converge:.1f}s more; seed {seed}"
    )
    for kill in kills:
        print(
            f"  kill at {kill.at:5.1f}s: {kill.at_gateway:2} operations at the gateway"
            f" ({kill.orphaned:2} left there by earlier kills),"
            f" {kill.unreported:2} results unreported, {kill.pays_in_flight:2} pay requests"
            f" in flight, {kill.guests_paying:2} guests paying; up again in"
            f" {kill.restart_seconds:.1f}s"
        )
    for order_id in dict.fromkeys(order for order, _, _ in found[:5]):
        print(evidence(run, order_id))

    unexpected = [u for guest in run.guests for u in guest.unexpected]
    assert found == [], f"violations (first 20): {found[:20]}"
    assert failed == [], f"failed tasks: {failed}"
    assert left == [], f"tasks never finished: {left}"
    assert unexpected == [], unexpected[:20]
    assert len(kills) == KILLS
    # The kills must have met work in flight, or the test tested nothing.
    assert any(kill.at_gateway for kill in kills), "no kill met an operation at the gateway"
    assert tried_again > 0, "no operation was cut off at the gateway and tried again"
