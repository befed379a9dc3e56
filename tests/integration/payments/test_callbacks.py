"""Transaction callbacks on the durable queue: duplicates, disorder and a worker killed mid-task."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import ClientSession, web

from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.tickets import TICKET_HEADER
from qrpay.payments_eda import tasks
from tests.support.payments_cluster import (
    USER,
    Cluster,
    accruals,
    config_data,
    operations,
    sql,
    wait_until_drained,
)
from tests.support.tickets import as_api_proxy

pytestmark = pytest.mark.postgres


def callback_payload(invoice: dict[str, Any], kind: str) -> dict[str, Any]:
    """What transactions puts for one operation of the invoice (TransactionCallback)."""
    operation = next(op for op in invoice["operations"] if op["kind"] == kind)
    return {
        "invoice_id": invoice["invoice_id"],
        "order_id": invoice["order_id"],
        "operation_id": operation["operation_id"],
        "kind": operation["kind"],
        "status": operation["status"],
        "amount": operation["amount"],
        "currency": operation["currency"],
        "target": operation.get("target"),
        "reason": operation.get("reason"),
    }


async def put_callbacks(cluster: Cluster, payloads: list[tuple[str, dict[str, Any]]]) -> None:
    queue = TaskQueue(cluster.queue_url)
    try:
        for task_id, payload in payloads:
            assert await queue.put(tasks.TRANSACTION_CALLBACK, task_id=task_id, payload=payload)
    finally:
        await queue.close()


def pay(cluster: Cluster, order_id: str, signature: str) -> None:
    answer = httpx.post(
        f"{cluster.url('payments-eda')}/4.0/payments/v1/orders",
        json=cluster.pay_body(order_id, signature),
        headers=as_api_proxy(USER),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


async def wait_for_operation(cluster: Cluster, order_id: str, kind: str) -> None:
    deadline = time.monotonic() + 30
    while not any(k == kind and s != "pending" for k, s in operations(cluster, order_id)):
        assert time.monotonic() < deadline, operations(cluster, order_id)
        await asyncio.sleep(0.1)


async def held_order(cluster: Cluster) -> str:
    """An order of 1000 a guest paid: its hold is done at the gateway, its callback put."""
    order_id, signature = cluster.create_order("1000.00")
    pay(cluster, order_id, signature)
    await wait_for_operation(cluster, order_id, "hold")
    return order_id


async def test_duplicated_and_reordered_callbacks_make_one_clear_and_one_accrual(
    cluster: Cluster,
) -> None:
    order_id = await held_order(cluster)
    hold = callback_payload(cluster.invoice(order_id), "hold")

    # The hold's result delivered twice more, under task ids of our own, before any worker runs.
    await put_callbacks(cluster, [("dup-hold-1", hold), ("dup-hold-2", hold)])
    cluster.worker("a")
    await cluster.wait_for_status(order_id, "PAYED")
    await wait_until_drained(cluster)

    # Late and out of order: the clear's result first, then the hold's again, each twice.
    clear = callback_payload(cluster.invoice(order_id), "clear")
    await put_callbacks(
        cluster,
        [
            ("late-clear-1", clear),
            ("late-clear-2", clear),
            ("late-hold-1", hold),
            ("late-hold-2", hold),
        ],
    )
    await wait_until_drained(cluster)
    await asyncio.sleep(1.0)  # anything the late tasks started would show up in transactions now
    await wait_until_drained(cluster)

    assert operations(cluster, order_id) == [("hold", "succeeded"), ("clear", "succeeded")]
    assert [Decimal(a[0]) for a in accruals(cluster, order_id)] == [Decimal(300)]
    assert cluster.order_status(order_id) == "PAYED"
    failed = sql(
        cluster.queue_url, "SELECT task_name FROM procrastinate_jobs WHERE status = 'failed'"
    )
    assert failed == []


class SlowProxy:
    """Sits between a worker and eda: lets requests through after ``delay`` seconds;
    ``entered`` is set by the first request for ``watched`` (the worker's periodic sweep of
    stuck payments goes through it too)."""

    def __init__(self, target: str, delay: float, watched: str) -> None:
        self.target = target
        self.delay = delay
        self.watched = watched
        self.entered = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == self.watched:
            self.entered.set()
        await asyncio.sleep(self.delay)
        async with (
            ClientSession() as session,
            session.request(
                request.method,
                self.target + request.path_qs,
                data=await request.read(),
                headers={
                    "Content-Type": request.headers.get("Content-Type", "application/json"),
                    # The caller's service ticket passes, as through any proxy.
                    TICKET_HEADER: request.headers.get(TICKET_HEADER, ""),
                },
            ) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SlowProxy]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


@pytest.mark.timeout(300)
async def test_a_worker_killed_mid_callback_leaves_the_task_to_another_worker(
    cluster: Cluster,
) -> None:
    order_id = await held_order(cluster)

    # The callback reads the order's payments first (eda's ledger, issue 18).
    eda = SlowProxy(cluster.url("eda"), delay=60, watched=f"/v1/orders/{order_id}/payments")
    async with eda.running() as proxy:
        # Worker A reaches eda only through the slow proxy: its callback task hangs there.
        slow = config_data(cluster.base)
        slow["services"]["eda"] = {"base_url": proxy.url, "timeout_ms": 60_000, "retries": 0}
        doomed, _ = cluster.worker("doomed", env=cluster.env_with(slow, "config-slow.yaml"))
        await asyncio.wait_for(proxy.entered.wait(), timeout=30)
        doing = sql(
            cluster.queue_url,
            "SELECT task_name FROM procrastinate_jobs WHERE status = 'doing'",
        )
        assert ("payments_eda.transaction_callback",) in doing
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)

    assert cluster.order_status(order_id) == "PAYMENT_IN_PROGRESS"
    # Worker B notices A's heartbeat stopped, takes the task back and finishes the payment.
    started = time.monotonic()
    _, log = cluster.worker("rescuer")
    await cluster.wait_for_status(order_id, "PAYED", timeout=90)
    recovered_after = time.monotonic() - started
    await wait_until_drained(cluster)
    assert "stalled_task_recovered" in log.read_text(errors="replace")
    assert operations(cluster, order_id) == [("hold", "succeeded"), ("clear", "succeeded")]
    assert [Decimal(a[0]) for a in accruals(cluster, order_id)] == [Decimal(300)]
    assert recovered_after < 60
