"""Refunds while transactions is SIGKILLed mid-operation and started again (issue 19).

The payer side as `qrpay serve` processes on PostgreSQL (tests/support/payments_cluster),
one `qrpay worker payments-eda`, the sandbox gateway slowed to GATEWAY_LATENCY_MS a call.
ORDERS orders are paid first (no faults). Then the POS refunds each through payments-eda
(`POST /v1/refunds`), a quarter of one order and all of the next, in turn; a refund whose
answer is lost (a 5xx, a broken connection) is sent again with its refund id, as a POS
would. KILLS times while refunds go out, transactions' process group is SIGKILLed, at a
moment when a refund is at the gateway, and started again a little later.

Then, once every refund part has its outcome and no queue task is left, for every order:
- eda's refunds are transactions' (the refunded amount of each payment is what its
  succeeded refund operations gave back), no refund operation is pending, none was refused
  (the cards refund), and what the gateway gave back is at most what it cleared;
- the refund asked is the refund made, once (a repeat never refunded twice);
- the cashback taken back is the refund's proportion of the accrual, once per part;
besides: no queue task failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.plugins.cluster import running_faulty_cluster
from tests.support.kill_chaos import converge, queue_jobs
from tests.support.payments_cluster import (
    ClusterDatabases,
    FaultyCluster,
    Patience,
    PayingGuest,
    pay_like_the_page,
    slow_gateway,
)
from tests.support.postgres import DatabaseFactory
from tests.support.tickets import ticket_headers

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(600)]

ORDERS = 40
SPACING = 0.25  # seconds between two refunds starting: 10 s of refunds
GATEWAY_LATENCY_MS = 600
KILLS = 3
DOWN_FOR = (0.3, 2.0)  # seconds transactions stays dead before the restart
BUSY_WAIT = 4.0  # seconds a kill may wait for a refund at the gateway
RETRY_PAUSE = 1.0
CONVERGE_SECONDS = 240.0
PATIENCE = Patience(retry_pause=1.0, poll=0.5, max_taps=20, give_up_after=120.0)
CASHBACK_RATE = Decimal("0.3")  # rest-1's


def _configure(config: dict[str, Any]) -> None:
    slow_gateway(config, GATEWAY_LATENCY_MS)


@pytest.fixture
async def killable_cluster(
    tmp_path: Path, pg_database: DatabaseFactory
) -> AsyncIterator[FaultyCluster]:
    async for instance in running_faulty_cluster(tmp_path, pg_database, configure=_configure):
        yield instance


def refunds_at_gateway(dbs: ClusterDatabases) -> int:
    ((count,),) = dbs.sql(
        "transactions",
        "SELECT count(*) FROM operations WHERE kind = 'refund' AND status = 'pending'",
    )
    return int(count)


async def refund_like_a_pos(
    cluster: FaultyCluster, client: httpx.AsyncClient, body: dict[str, Any], answers: list[str]
) -> None:
    """Send the refund until it gets an answer (the same refund id each time)."""
    for _ in range(30):
        try:
            answer = await client.post(
                f"{cluster.url('payments-eda')}/v1/refunds",
                json=body,
                headers=ticket_headers(to="payments-eda"),
            )
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)
            await asyncio.sleep(RETRY_PAUSE)
            continue
        answers.append(str(answer.status_code))
        if answer.status_code == 200:
            return
        assert answer.status_code in (502, 503, 504), answer.text
        await asyncio.sleep(RETRY_PAUSE)
    raise AssertionError(f"no answer to the refund {body}: {answers}")


async def test_refunds_survive_transactions_killed_mid_operation(
    killable_cluster: FaultyCluster,
) -> None:
    cluster = killable_cluster
    cluster.worker("a")
    guests = [PayingGuest(*cluster.create_order("1000.00")) for _ in range(ORDERS)]
    order_ids = [guest.order_id for guest in guests]
    dbs = ClusterDatabases(cluster)
    rng = random.Random(19)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(pay_like_the_page(cluster, client, g, PATIENCE) for g in guests))
            assert all(guest.paid for guest in guests), [g.taps for g in guests]
            found, left, _ = await converge(dbs, order_ids)
            assert (found, left) == ([], []), (found, left)

            asked = {
                order_id: Decimal("250.00") if i % 2 == 0 else Decimal("1000.00")
                for i, order_id in enumerate(order_ids)
            }
            answers: list[str] = []
            started = 0

            async def refund(i: int, order_id: str) -> None:
                nonlocal started
                await asyncio.sleep(i * SPACING)
                started += 1
                body = {
                    "order_id": order_id,
                    "refund_id": f"pos-{i}",
                    "amount": format(asked[order_id], "f"),
                }
                await refund_like_a_pos(cluster, client, body, answers)

            kills_met_work = 0

            async def kill_and_restart() -> None:
                nonlocal kills_met_work
                for number in range(1, KILLS + 1):
                    while started < number * ORDERS // (KILLS + 1):
                        await asyncio.sleep(0.05)
                    deadline = time.monotonic() + BUSY_WAIT
                    while time.monotonic() < deadline:
                        if await asyncio.to_thread(refunds_at_gateway, dbs):
                            break
                        await asyncio.sleep(0.02)
                    cluster.kill("transactions")
                    kills_met_work += bool(await asyncio.to_thread(refunds_at_gateway, dbs))
                    await asyncio.sleep(rng.uniform(*DOWN_FOR))
                    await asyncio.to_thread(cluster.restart, "transactions")

            await asyncio.gather(
                *(refund(i, order_id) for i, order_id in enumerate(order_ids)), kill_and_restart()
            )
        settled = await settle(dbs, order_ids)
        failed = await asyncio.to_thread(queue_jobs, dbs, "failed")
        print(
            f"\nrefunds with transactions killed: {ORDERS} refunds, {KILLS} kills"
            f" ({kills_met_work} with a refund at the gateway), answers"
            f" {sorted(set(answers))}, settled in {settled:.1f}s"
        )
        violations = refund_violations(dbs, order_ids, asked)
        assert violations == [], violations[:20]
        assert failed == [], failed
        assert kills_met_work > 0, "no kill met a refund at the gateway"
    finally:
        dbs.close()


async def settle(dbs: ClusterDatabases, order_ids: list[str]) -> float:
    """Until every refund part has its outcome and no task is left (CONVERGE_SECONDS at most)."""
    began = time.monotonic()
    while time.monotonic() - began < CONVERGE_SECONDS:
        ((refunding,),) = dbs.sql(
            "eda",
            "SELECT count(*) FROM refunds WHERE state = 'refunding' AND order_id = ANY(%s)",
            order_ids,
        )
        left = await asyncio.to_thread(queue_jobs, dbs, "todo", "doing")
        if not refunding and not left:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - began


def refund_violations(
    dbs: ClusterDatabases, order_ids: list[str], asked: dict[str, Decimal]
) -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = []
    parts: dict[str, list[tuple[str, str, Decimal]]] = {o: [] for o in order_ids}
    for order_id, part_id, state, amount in dbs.sql(
        "eda",
        "SELECT order_id, id, state, amount FROM refunds WHERE order_id = ANY(%s)",
        order_ids,
    ):
        parts[order_id].append((part_id, state, Decimal(amount)))
    ops: dict[str, list[tuple[str, str, str, Decimal]]] = {o: [] for o in order_ids}
    for order_id, operation_id, kind, status, amount in dbs.sql(
        "transactions",
        "SELECT i.order_id, o.operation_id, o.kind, o.status, o.amount FROM operations o"
        " JOIN invoices i ON i.invoice_id = o.invoice_id WHERE i.order_id = ANY(%s)",
        order_ids,
    ):
        ops[order_id].append((operation_id, kind, status, Decimal(amount)))
    reversals: dict[str, list[tuple[str, Decimal]]] = {o: [] for o in order_ids}
    for key, reversal_id, amount in dbs.sql(
        "cashback",
        "SELECT accrual_key, reversal_id, amount FROM reversals"
        " WHERE split_part(accrual_key, '.', 1) = ANY(%s)",
        order_ids,
    ):
        reversals[key.split(".")[0]].append((reversal_id, Decimal(amount)))
    for order_id in order_ids:
        mine = parts[order_id]
        states = sorted({state for _, state, _ in mine})
        if states != ["refunded"]:
            found.append((order_id, "refund parts", mine))
        made = sum((amount for _, state, amount in mine if state == "refunded"), Decimal(0))
        if made != asked[order_id]:
            found.append((order_id, "refunded, asked", (made, asked[order_id])))
        refund_ops = [op for op in ops[order_id] if op[1] == "refund"]
        if any(status != "succeeded" for _, _, status, _ in refund_ops):
            found.append((order_id, "refund operations", refund_ops))
        given_back = sum((a for _, _, s, a in refund_ops if s == "succeeded"), Decimal(0))
        cleared = sum((a for _, k, s, a in ops[order_id] if (k, s) == ("clear", "succeeded")))
        if given_back != made or given_back > cleared:
            found.append((order_id, "given back, refunded, cleared", (given_back, made, cleared)))
        taken = [amount for _, amount in reversals[order_id]]
        expected = (asked[order_id] * CASHBACK_RATE).quantize(Decimal("0.01"))
        if sum(taken, Decimal(0)) != expected or len(taken) != len(mine):
            found.append((order_id, "cashback taken back", (taken, expected)))
    return found
