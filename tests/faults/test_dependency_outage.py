"""20 payments while transactions and cashback drop every connection for ~5 s in the middle."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from tests.faults.conftest import FaultyCluster
from tests.integration.payments.cluster import (
    USER,
    accruals,
    operations,
    sql,
    unfinished_jobs,
)

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

PAYMENTS = 20
SPACING = 0.5  # seconds between two pay requests: the run lasts ~10 s
OUTAGE_START = 3.0  # seconds after the first pay request
OUTAGE = 5.0
LIVE_HOLD = frozenset({"pending", "succeeded"})


async def test_payments_converge_after_a_dependency_outage(
    faulty_cluster: FaultyCluster,
) -> None:
    cluster = faulty_cluster
    orders = [cluster.create_order("1000.00") for _ in range(PAYMENTS)]
    proxies = cluster.proxies.values()

    async def outage() -> tuple[float, float]:
        await asyncio.sleep(OUTAGE_START)
        for proxy in proxies:
            proxy.drop()
        dropped = time.monotonic()
        # The worker comes up inside the outage: the hold callbacks queued so far have their
        # clears (and then accruals) meet the unreachable dependencies and go to retries.
        await asyncio.to_thread(cluster.worker, "a")
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - dropped)))
        for proxy in proxies:
            proxy.pass_through()
        return dropped, time.monotonic()

    async with httpx.AsyncClient(timeout=30) as client:

        async def pay(index: int, order_id: str, signature: str) -> int:
            await asyncio.sleep(index * SPACING)
            answer = await client.post(
                f"{cluster.url('payments-eda')}/4.0/payments/v1/orders",
                json=cluster.pay_body(order_id, signature),
                headers={"X-Yandex-UID": USER},
            )
            assert answer.status_code in (200, 503), answer.text
            return answer.status_code

        outage_task = asyncio.create_task(outage())
        statuses = await asyncio.gather(*(pay(i, *order) for i, order in enumerate(orders)))
        outage_start, outage_end = await outage_task

    accepted = [o for (o, _), s in zip(orders, statuses, strict=True) if s == 200]
    refused = [o for (o, _), s in zip(orders, statuses, strict=True) if s == 503]

    def converged() -> bool:
        return all(
            cluster.order_status(o) == "PAYED" and accruals(cluster, o) for o in accepted
        ) and not unfinished_jobs(cluster)

    deadline = time.monotonic() + 60
    while not converged():
        assert time.monotonic() < deadline, f"not converged after 60 s\n{cluster.logs()}"
        await asyncio.sleep(0.2)
    to_converge = time.monotonic() - outage_end

    violations: list[tuple[str, object]] = []
    for order_id in accepted:
        if operations(cluster, order_id) != [("hold", "succeeded"), ("clear", "succeeded")]:
            violations.append((order_id, operations(cluster, order_id)))
        if [Decimal(a[0]) for a in accruals(cluster, order_id)] != [Decimal(300)]:
            violations.append((order_id, accruals(cluster, order_id)))
    for order_id in refused:
        if cluster.order_status(order_id) == "PAYED":
            violations.append((order_id, "PAYED after a 503"))
        if any(kind == "hold" and s in LIVE_HOLD for kind, s in operations(cluster, order_id)):
            violations.append((order_id, operations(cluster, order_id)))
        if accruals(cluster, order_id):
            violations.append((order_id, accruals(cluster, order_id)))
    failed = sql(cluster.queue_url, "SELECT id FROM procrastinate_jobs WHERE status = 'failed'")
    print(
        f"\noutage: {PAYMENTS} payments, {len(accepted)} got 200 (all PAYED),"
        f" {len(refused)} got 503; dropped connections: transactions"
        f" {cluster.proxies['transactions'].received - cluster.proxies['transactions'].forwarded},"
        f" cashback {cluster.proxies['cashback'].received - cluster.proxies['cashback'].forwarded};"
        f" outage {outage_end - outage_start:.1f}s; violations: {len(violations)}; failed tasks: {len(failed)};"
        f" converged {to_converge:.2f}s after the outage ended"
    )
    assert violations == []
    assert failed == []
    assert refused, "no pay request met the outage: the test tested nothing"
