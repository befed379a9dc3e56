"""A hold whose answer is lost on the way back: the retry must not make a second hold."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from tests.support.faults import is_operation_start
from tests.support.payments_cluster import (
    USER,
    FaultyCluster,
    accruals,
    operations,
    sql,
    wait_until_drained,
)
from tests.support.tickets import as_api_proxy

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


async def test_a_lost_hold_answer_is_retried_into_one_hold(faulty_cluster: FaultyCluster) -> None:
    cluster = faulty_cluster
    proxy = cluster.proxies["transactions"]
    cluster.worker("a")
    order_id, signature = cluster.create_order("1000.00")

    # Only the hold (POST .../operations) loses its answer, once; ensure_invoice passes.
    proxy.applies = is_operation_start
    proxy.lose_response(times=1)
    forwarded_before = proxy.forwarded
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{cluster.url('payments-eda')}/4.0/payments/v1/orders",
            json=cluster.pay_body(order_id, signature),
            headers=as_api_proxy(USER),
        )
    await cluster.wait_for_status(order_id, "PAYED", timeout=60)
    to_payed = time.monotonic() - started
    await wait_until_drained(cluster)

    # The retried hold reached transactions again (the lost one was forwarded too).
    assert proxy.fault.times is None, "the lost response fault was never used"
    invoice = cluster.invoice(order_id)  # straight from transactions, not through the proxy
    holds = [op for op in invoice["operations"] if op["kind"] == "hold"]
    print(
        f"\nlost-response: guest got {answer.status_code}; holds for the order: {len(holds)};"
        f" requests forwarded to transactions during pay+finish:"
        f" {proxy.forwarded - forwarded_before}; time to PAYED: {to_payed:.2f}s"
    )
    assert answer.status_code == 200, answer.text
    assert len(holds) == 1, invoice
    assert operations(cluster, order_id) == [("hold", "succeeded"), ("clear", "succeeded")]
    assert [Decimal(a[0]) for a in accruals(cluster, order_id)] == [Decimal(300)]
    failed = sql(cluster.queue_url, "SELECT id FROM procrastinate_jobs WHERE status = 'failed'")
    assert failed == []
