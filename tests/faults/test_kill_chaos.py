"""200 payments through nginx while payments-eda-1 and the worker are SIGKILLed at random.

The real cluster (`python -m qrpay_tools.cluster up`: nginx, PostgreSQL, 2x iiko-integration,
2x payments-eda, one of every other service, one `qrpay worker payments-eda`). Guests, a
dozen at a time, each have the POS create an order (iiko-integration's POS API via nginx)
and pay it with the demo card via payments-eda through nginx, tapping Pay again (a bounded
number of times) after a 502/503/504 or a broken connection, or when the order is back to
waiting for payment. A chaos loop per target SIGKILLs the process group at a random moment
and waits for supervisord (the cluster's process manager) to start it again and for it to be
ready: nothing in the test restarts anything. After the last guest, everything killed is running
again and the test waits for convergence, then checks every order:

- PAYED: operations exactly hold + clear, both succeeded (besides holds voided before they
  were sent, which moved no money), and one accrual of 30% (300);
- otherwise: WAITING (no payment under way), no live hold (pending, or succeeded and not
  released), no clear, no accrual;

and the queue: no task failed, none left to run. SPEC 6: "no task and no payment is lost
when any process is killed at any moment". The hold TTL stays at its default (3 days): a
hold must be released by the payment flow itself, not by transactions' backstop.

QRPAY_CHAOS_SEED=<n> replays a run's kill schedule (the timing of the rest still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrpay_tools.cluster.run import Layout, alive
from tests.support.cluster import cluster_command, cluster_layout
from tests.support.kill_chaos import (
    MIN_KILLS,
    ORDERS,
    TARGETS,
    WATCHDOG_SECONDS,
    Databases,
    converge,
    log_tails,
    pay_under_chaos,
    pid_of,
    print_report,
    queue_jobs,
)
from tests.support.processes import child_env, run

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(900)]


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Layout, list[str]]]:
    with cluster_layout(tmp_path, "chaos") as found:
        yield found


async def test_payments_survive_random_sigkills_of_payments_eda_and_the_worker(
    cluster: tuple[Layout, list[str]],
) -> None:
    layout, options = cluster
    test_started = time.monotonic()
    seed = int(os.environ.get("QRPAY_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nchaos seed: {seed} (QRPAY_CHAOS_SEED={seed} replays the kill schedule)")
    sys.stdout.flush()

    overrides = ["--set", f"payments.hold_watchdog_seconds={WATCHDOG_SECONDS}"]
    started = run(cluster_command("up", *options, *overrides), env=child_env(), timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    dbs = Databases(layout)
    try:
        await chaos_and_check(layout, dbs, seed, test_started)
    finally:
        dbs.close()


async def chaos_and_check(layout: Layout, dbs: Databases, seed: int, test_started: float) -> None:
    chaos = await pay_under_chaos(layout, dbs, seed)
    stats, order_ids, seen_paid = chaos.stats, chaos.order_ids, chaos.seen_paid

    for name in TARGETS:
        assert alive(pid_of(layout, name)), f"{name} is not running after the chaos"
    found, left, to_converge = await converge(dbs, order_ids)
    statuses_now = dict(
        dbs.sql("eda", "SELECT id, status FROM orders WHERE id = ANY(%s)", list(seen_paid))
    )
    found += [
        (o, "guest saw PAYED", statuses_now.get(o))
        for o in seen_paid
        if statuses_now.get(o) != "PAYED"
    ]
    failed = await asyncio.to_thread(queue_jobs, dbs, "failed")
    statuses = Counter(
        status
        for (status,) in dbs.sql("eda", "SELECT status FROM orders WHERE id = ANY(%s)", order_ids)
    )
    print_report(
        chaos, layout, found, failed, left, statuses, to_converge, time.monotonic() - test_started
    )
    kills = Counter(kill.target for kill in stats.kills)
    while_paying = [kill for kill in stats.kills if kill.guests_paying > 0]
    context = f"\n{log_tails(layout, (*TARGETS, 'payments-eda-2', 'transactions'))}"
    assert found == [], f"violations (first 20): {found[:20]}{context}"
    assert failed == [], f"failed tasks: {failed}{context}"
    assert left == [], f"tasks never finished: {left}{context}"
    assert stats.unexpected == [], stats.unexpected[:20]
    assert len(order_ids) == ORDERS
    for target in TARGETS:
        assert kills[target] >= MIN_KILLS, f"{target} was killed {kills[target]} times only"
    assert while_paying, "no kill landed while guests were paying: the test tested nothing"
    assert any(kill.pays_in_flight or kill.jobs_running for kill in stats.kills), (
        "no kill met a pay request or a queue task in flight"
    )
