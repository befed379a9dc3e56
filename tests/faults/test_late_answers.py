"""Late hold answers (issue 9): transactions records every hold, payments-eda never hears.

A proxy between the payer side and transactions passes every request on at once, but
holds the ANSWER to a hold start (POST .../operations with kind "hold") past payments-eda's
deadline for transactions: every pay request's hold times out at payments-eda while
transactions has recorded it and the sandbox gateway (latency ~1.5 s) carries it out.
Everything else (invoices, clears, voids, reads) passes through untouched.

Guests tap Pay again whenever they get an answer other than 200, and whenever the order
is back to WAITING (the POS shows it unpaid, so a guest can pay again). Before the fix a
pay whose hold timed out rolled the order back to WAITING while the hold's callback
cleared it: the guest paid a second time and was charged twice.

At the end, read from the databases (transactions' operations of every payment's invoice,
eda's orders and payments, cashback's accruals), money leaves a guest at most once per
order:

- an order PAYED has exactly one succeeded clear; no order has more than one; an order
  not PAYED has none;
- every succeeded hold is cleared or released (after the state converged);
- at most one cashback accrual per order, and only for a PAYED order;

and every order ends PAYED (the card always pays and the guests keep trying), no queue
task failed.

QRPAY_LATE_ANSWER_PAYMENTS=<n> sets the number of payments (default 200, issue 9: about
40 s of guests at one every 0.2 s, a minute in all).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.plugins.cluster import running_faulty_cluster
from tests.support.faults import FaultProxy, SelectiveFaultProxy, is_operation_start
from tests.support.kill_chaos import ACCRUALS_BY_ORDER, OPERATIONS_BY_ORDER
from tests.support.payments_cluster import (
    FaultyCluster,
    Patience,
    PayingGuest,
    pay_like_the_page,
    sql,
)
from tests.support.postgres import DatabaseFactory

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

PAYMENTS = int(os.environ.get("QRPAY_LATE_ANSWER_PAYMENTS", "200"))
GATEWAY_LATENCY_MS = 1500
# payments-eda's deadline for transactions (the dev config's), and how late the proxy
# answers a hold start: well past it, so every hold start times out at payments-eda.
TRANSACTIONS_DEADLINE_MS = 2000
ANSWER_DELAY = 3.5
# Short, so the sweep gives payments back during the test, racing the callbacks (dev: 30 s).
WATCHDOG_SECONDS = 5
SPACING = 0.2  # seconds between two guests starting to pay
# A guest stops after 10 taps or 60 s; the money is checked all the same.
PATIENCE = Patience(retry_pause=1.0, poll=0.3, max_taps=10, give_up_after=60.0)
CONVERGE_LIMIT = 120.0


class LateAnswerProxy(SelectiveFaultProxy):
    """Forwards every request at once; the answer to a hold start waits ``late_by`` more."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.late_by = 0.0
        self.late = 0  # hold starts forwarded whose answer was held back
        self.late_statuses: Counter[int] = Counter()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.late_by > 0 and await _is_hold_start(request):
            self.received += 1
            status, headers, body = await self._forward(request)
            self.late += 1
            self.late_statuses[status] += 1
            await asyncio.sleep(self.late_by)
            return web.Response(body=body, status=status, headers=headers)
        return await FaultProxy._handle(self, request)  # pass-through (no fault is set)


async def _is_hold_start(request: web.Request) -> bool:
    if not is_operation_start(request):
        return False
    try:
        body = orjson.loads(await request.read())  # aiohttp keeps it for the forward
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("kind") == "hold"


def _late_config(config: dict[str, Any]) -> None:
    config.setdefault("payments", {})["hold_watchdog_seconds"] = WATCHDOG_SECONDS
    config["transactions"]["gateway"] = {
        **config["transactions"].get("gateway", {}),
        "latency_ms": GATEWAY_LATENCY_MS,
    }
    config["services"]["transactions"]["timeout_ms"] = TRANSACTIONS_DEADLINE_MS


@pytest.fixture
async def late_cluster(
    tmp_path: Path, pg_database: DatabaseFactory
) -> AsyncIterator[FaultyCluster]:
    def proxy_for(name: str, url: str) -> SelectiveFaultProxy:
        return LateAnswerProxy(url) if name == "transactions" else SelectiveFaultProxy(url)

    async for instance in running_faulty_cluster(tmp_path, pg_database, proxy_for, _late_config):
        yield instance


def _ops_by_order(cluster: FaultyCluster, order_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = sql(cluster.databases["transactions"], OPERATIONS_BY_ORDER, order_ids)
    found: dict[str, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for order_id, operation_id, kind, status, target, reason in rows:
        found[str(order_id)].append(
            {"id": operation_id, "kind": kind, "status": status, "target": target, "reason": reason}
        )
    return found


LIVE = ("holding", "clearing", "rolling_back")


def _orders(cluster: FaultyCluster, order_ids: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Each order's status and its payments' states (eda's payments table, issue 18)."""
    rows = sql(
        cluster.databases["eda"],
        "SELECT o.id, o.status, p.state FROM orders o LEFT JOIN payments p ON p.order_id = o.id"
        " WHERE o.id = ANY(%s) ORDER BY o.id, p.created_at",
        order_ids,
    )
    found: dict[str, tuple[str, list[str]]] = {}
    for order_id, status, state in rows:
        _, states = found.setdefault(str(order_id), (str(status), []))
        if state is not None:
            states.append(str(state))
    return found


def _accruals(cluster: FaultyCluster, order_ids: list[str]) -> Counter[str]:
    rows = sql(cluster.databases["cashback"], ACCRUALS_BY_ORDER, order_ids)
    return Counter(str(row[0]) for row in rows)


def _unsettled_holds(ops: list[dict[str, Any]]) -> list[str]:
    """Succeeded holds without a succeeded clear or unhold targeting them."""
    settled = {
        op["target"]
        for op in ops
        if op["kind"] in ("clear", "unhold") and op["status"] == "succeeded"
    }
    return [
        op["id"]
        for op in ops
        if op["kind"] == "hold" and op["status"] == "succeeded" and op["id"] not in settled
    ]


def _violations(
    orders: dict[str, tuple[str, list[str]]],
    ops_by_order: dict[str, list[dict[str, Any]]],
    accrued: Counter[str],
) -> list[str]:
    found: list[str] = []
    for order_id, (status, payments) in orders.items():
        ops = ops_by_order[order_id]
        clears = [op for op in ops if op["kind"] == "clear" and op["status"] == "succeeded"]
        listed = ", ".join(
            f"{op['kind']} {op['id']} {op['status']}"
            + (f" ({op['reason']})" if op["reason"] else "")
            for op in ops
        )
        where = f"order {order_id} ({status}, payments {payments}): {listed}"
        if len(clears) > 1:
            found.append(f"{len(clears)} succeeded clears: {where}")
        if status == "PAYED" and len(clears) != 1:
            found.append(f"PAYED with {len(clears)} succeeded clears: {where}")
        if status != "PAYED" and clears:
            found.append(f"not PAYED but a succeeded clear: {where}")
        if unsettled := _unsettled_holds(ops):
            found.append(f"succeeded holds neither cleared nor released {unsettled}: {where}")
        if accrued[order_id] > 1:
            found.append(f"{accrued[order_id]} cashback accruals: {where}")
        if accrued[order_id] and status != "PAYED":
            found.append(f"cashback for an order not PAYED: {where}")
        if payments.count("paid") > 1:
            found.append(f"{payments.count('paid')} payments paid the whole bill: {where}")
    return found


def _converged(
    cluster: FaultyCluster,
    orders: dict[str, tuple[str, list[str]]],
    ops_by_order: dict[str, list[dict[str, Any]]],
) -> bool:
    if any(state in LIVE for _, states in orders.values() for state in states):
        return False
    for ops in ops_by_order.values():
        if any(op["status"] == "pending" for op in ops) or _unsettled_holds(ops):
            return False
    # Every task done, the ones scheduled for later (retries) included.
    jobs = sql(
        cluster.queue_url,
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
    )
    return jobs[0][0] == 0


@pytest.mark.timeout(420)
async def test_late_hold_answers_never_charge_a_guest_twice(late_cluster: FaultyCluster) -> None:
    cluster = late_cluster
    proxy = cluster.proxies["transactions"]
    assert isinstance(proxy, LateAnswerProxy)
    cluster.worker("a")
    guests = [PayingGuest(*cluster.create_order("1000.00")) for _ in range(PAYMENTS)]
    order_ids = [guest.order_id for guest in guests]
    proxy.late_by = ANSWER_DELAY
    started = time.monotonic()

    async with httpx.AsyncClient(timeout=30) as client:

        async def pay(index: int, guest: PayingGuest) -> None:
            await asyncio.sleep(index * SPACING)
            await pay_like_the_page(cluster, client, guest, PATIENCE)

        await asyncio.gather(*(pay(i, guest) for i, guest in enumerate(guests)))
    guests_done = time.monotonic() - started

    # Converge: no payment under way, no pending operation, no unsettled hold, no task.
    deadline = time.monotonic() + CONVERGE_LIMIT
    while True:
        orders = _orders(cluster, order_ids)
        ops_by_order = _ops_by_order(cluster, order_ids)
        converged = _converged(cluster, orders, ops_by_order)
        if converged or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    to_converge = time.monotonic() - started - guests_done
    accrued = _accruals(cluster, order_ids)
    violations = _violations(orders, ops_by_order, accrued)
    failed = sql(cluster.queue_url, "SELECT id FROM procrastinate_jobs WHERE status = 'failed'")

    statuses = Counter(status for status, _ in orders.values())
    taps = Counter(t for guest in guests for t in guest.taps)
    ops_count = Counter(
        f"{op['kind']}:{op['status']}" for ops in ops_by_order.values() for op in ops
    )
    pay_seconds = sorted(seconds for guest in guests for seconds in guest.tap_seconds)
    print(
        f"\nlate hold answers (+{ANSWER_DELAY:.1f}s past a {TRANSACTIONS_DEADLINE_MS} ms"
        f" deadline, gateway {GATEWAY_LATENCY_MS} ms): {len(guests)} payments,"
        f" {proxy.late} hold answers held back (transactions answered"
        f" {dict(proxy.late_statuses)}), taps {dict(sorted(taps.items()))},"
        f" back to WAITING seen {sum(g.given_back for g in guests)} times,"
        f" {sum(g.gave_up for g in guests)} guests gave up;"
        f" orders {dict(statuses)}; operations {dict(sorted(ops_count.items()))};"
        f" accruals {sum(accrued.values())}; violations: {len(violations)};"
        f" failed tasks: {len(failed)}; pay answer max {pay_seconds[-1]:.2f}s;"
        f" guests done in {guests_done:.1f}s, converged"
        f" {'in' if converged else 'NOT within'} {to_converge:.1f}s more"
    )
    for violation in violations[:10]:
        print(f"VIOLATION: {violation}")
    gave_up = {g.order_id: g.taps for g in guests if g.gave_up}
    assert violations == []
    # The pay request answers at once, or 503 while payments are unavailable, or 409.
    assert [t for t in taps if t.split()[0] not in ("200", "409", "503")] == [], taps
    assert [u for g in guests for u in g.unexpected] == []
    assert converged, f"not converged {CONVERGE_LIMIT:.0f}s after the guests\n{cluster.logs()}"
    assert failed == []
    assert gave_up == {}, gave_up
    assert statuses == Counter({"PAYED": len(guests)}), orders
    assert all(accrued[order_id] == 1 for order_id in order_ids), accrued
    # The fault must have met every pay: each guest's first hold start got a late answer.
    assert proxy.late >= len(guests), proxy.late
