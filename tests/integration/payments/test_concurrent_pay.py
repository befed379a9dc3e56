"""SPEC 4.3/6: concurrent duplicates of a pay request never make a second hold."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from tests.support.payments_cluster import (
    USER,
    Cluster,
    accruals,
    operations,
    wait_until_drained,
)
from tests.support.processes import terminate
from tests.support.tickets import as_api_proxy

pytestmark = pytest.mark.postgres

CONCURRENCY = 50


async def test_fifty_concurrent_pays_for_one_order_make_one_hold(cluster: Cluster) -> None:
    order_id, signature = cluster.create_order("1000.00")
    body = cluster.pay_body(order_id, signature)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{cluster.url('payments-eda')}/4.0/payments/v1/orders",
                    json=body,
                    headers=as_api_proxy(USER),
                )
                for _ in range(CONCURRENCY)
            )
        )
    assert [a.status_code for a in answers] == [200] * CONCURRENCY, [
        a.text for a in answers if a.status_code != 200
    ][:3]
    assert {a.json()["status"] for a in answers} == {"WAITING"}

    holds = [op for op in operations(cluster, order_id) if op[0] == "hold"]
    assert len(holds) == 1, holds

    # The worker finishes the payment: still one hold, one clear, one accrual.
    worker, log = cluster.worker("a")
    await cluster.wait_for_status(order_id, "PAYED")
    await wait_until_drained(cluster)
    # SIGTERM: a graceful stop.
    assert terminate(worker, timeout=30) == 0, log.read_text()
    assert "payments-eda worker stopped." in log.read_text()
    assert operations(cluster, order_id) == [("hold", "succeeded"), ("clear", "succeeded")]
    assert [Decimal(a[0]) for a in accruals(cluster, order_id)] == [Decimal(300)]
