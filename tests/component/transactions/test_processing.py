"""Processing through the sandbox gateway, the callback outbox and hold auto-release.

Background jobs are off: each test drives the processor and the relay itself
and asserts what was put on the owner's queue.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from qrpay.transactions.gateway import SandboxGateway
from tests.support.component.transactions import POOR, TTL, Transactions, metric
from tests.support.services import make_context, running_service
from tests.support.waiting import eventually


def callbacks(tx: Transactions) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for job in tx.jobs():
        assert job["task_name"] == "transaction_callback"
        assert job["queue_name"] == "payments_eda"
        result.append((job["queueing_lock"], job["args"]))
    return result


async def test_hold_succeeds_and_calls_back(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    assert tx.jobs() == []  # nothing is reported before the gateway answered
    report = await tx.service.relay_once()
    assert (report.processed, report.callbacks) == (1, 1)
    invoice = await tx.get()
    assert invoice["operations"][0]["status"] == "succeeded"
    assert invoice["operations"][0]["finished_at"] is not None
    assert invoice["held"] == "100.00"
    assert callbacks(tx) == [
        (
            "inv-1:h1:succeeded",
            {
                "invoice_id": "inv-1",
                "order_id": "order-1",
                "user_id": "user-1",
                "operation_id": "h1",
                "kind": "hold",
                "status": "succeeded",
                "amount": "100.00",
                "currency": "RUB",
                "target": None,
                "reason": None,
            },
        )
    ]
    # A second relay finds nothing to do.
    report = await tx.service.relay_once()
    assert (report.processed, report.callbacks) == (0, 0)
    assert len(tx.jobs()) == 1
    assert (
        await metric(tx, "qrpay_transactions_operations_total", kind="hold", status="succeeded")
        == 1
    )
    assert await metric(tx, "qrpay_transactions_callbacks_sent_total") == 1
    assert await metric(tx, "qrpay_transactions_pending_operations") == 0


async def test_insufficient_funds_fails_the_hold(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=POOR)
    await tx.service.relay_once()
    invoice = await tx.get()
    assert invoice["operations"][0]["status"] == "failed"
    assert invoice["operations"][0]["reason"] == "insufficient_funds"
    assert invoice["held"] == "0.00"
    [(task_id, payload)] = callbacks(tx)
    assert task_id == "inv-1:h1:failed"
    assert (payload["status"], payload["reason"]) == ("failed", "insufficient_funds")
    # The failed hold is not live: another may start.
    assert (await tx.hold("h2")).status_code == 200


async def test_clear_after_hold(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", amount="250")
    await tx.service.relay_once()
    clear = await tx.operation(operation_id="c1", kind="clear", target="h1")
    assert clear.status_code == 200, clear.text
    assert (clear.json()["amount"], clear.json()["target"]) == ("250.00", "h1")
    # Being cleared: no second clear, no release, no new hold.
    again = await tx.operation(operation_id="c2", kind="clear", target="h1")
    assert again.json()["code"] == "nothing_to_clear"
    assert (await tx.hold("h2")).json()["code"] == "hold_active"
    await tx.service.relay_once()
    invoice = await tx.get()
    assert [(o["operation_id"], o["status"]) for o in invoice["operations"]] == [
        ("h1", "succeeded"),
        ("c1", "succeeded"),
    ]
    assert (invoice["held"], invoice["cleared"], invoice["released"]) == ("0.00", "250.00", "0.00")
    assert [t for t, _ in callbacks(tx)] == ["inv-1:h1:succeeded", "inv-1:c1:succeeded"]
    assert callbacks(tx)[1][1]["target"] == "h1"
    gateway = tx.service.gateway
    assert isinstance(gateway, SandboxGateway)
    assert gateway.calls == [("hold", "inv-1:h1"), ("clear", "inv-1:c1")]
    # A finished operation repeated is returned as it is.
    repeat = await tx.operation(operation_id="c1", kind="clear", target="h1")
    assert repeat.json()["status"] == "succeeded"
    assert (await tx.operation(operation_id="u1", kind="unhold", target="h1")).json()[
        "code"
    ] == "nothing_to_release"


async def test_unhold_releases_the_hold(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    unhold = await tx.operation(operation_id="u1", kind="unhold", target="h1")
    assert unhold.status_code == 200, unhold.text
    await tx.service.relay_once()
    invoice = await tx.get()
    assert (invoice["held"], invoice["cleared"], invoice["released"]) == ("0.00", "0.00", "100.00")
    assert [t for t, _ in callbacks(tx)] == ["inv-1:h1:succeeded", "inv-1:u1:succeeded"]
    assert (await tx.hold("h2")).status_code == 200


async def test_hold_is_released_after_its_ttl(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    tx.clock.advance(TTL - 1)
    assert (await tx.service.relay_once()).released == 0
    tx.clock.advance(1)
    report = await tx.service.relay_once()
    assert (report.released, report.processed, report.callbacks) == (1, 1, 1)
    invoice = await tx.get()
    assert [(o["operation_id"], o["kind"], o["status"]) for o in invoice["operations"]] == [
        ("h1", "hold", "succeeded"),
        ("auto-release:h1", "unhold", "succeeded"),
    ]
    assert invoice["released"] == "100.00"
    task_id, payload = callbacks(tx)[-1]
    assert task_id == "inv-1:auto-release:h1:succeeded"
    assert (payload["kind"], payload["target"]) == ("unhold", "h1")
    tx.clock.advance(10 * TTL)
    assert (await tx.service.relay_once()).released == 0


async def test_a_hold_being_cleared_is_not_auto_released(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    await tx.operation(operation_id="c1", kind="clear", target="h1")
    tx.clock.advance(2 * TTL)
    report = await tx.service.relay_once()
    assert report.released == 0
    assert (await tx.get())["cleared"] == "100.00"


async def test_crash_between_result_and_callback_still_calls_back_once(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    # The processor records the result and "dies" before the outbox step.
    assert await tx.service.process_pending() == 1
    assert (await tx.get())["operations"][0]["status"] == "succeeded"
    assert tx.jobs() == []
    # Two relays (a restart, a second instance) deliver it; the queue keeps one task.
    await tx.service.deliver_callbacks()
    await tx.service.relay_once()
    await tx.service.relay_once()
    assert [t for t, _ in callbacks(tx)] == ["inv-1:h1:succeeded"]


async def test_a_callback_put_twice_before_it_is_marked_is_queued_once(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.process_pending()
    # Two relays read the same undelivered row before either marked it.
    from qrpay.kernel.queue import TaskSpec
    from qrpay.transactions.repository import TransactionsRepository
    from qrpay.transactions.service import callback_payload, callback_task_id

    async with tx.service.db.read() as session:
        [(invoice, op)] = await TransactionsRepository(session).undelivered(limit=10)
    spec = TaskSpec(name=invoice.callback_task, queue=invoice.callback_queue)
    payload = callback_payload(invoice, op).model_dump(mode="json")
    assert await tx.queue.put(spec, task_id=callback_task_id(op), payload=payload)
    assert await tx.service.deliver_callbacks() == 1
    assert [t for t, _ in callbacks(tx)] == ["inv-1:h1:succeeded"]


async def test_callbacks_reach_a_registered_handler(tx: Transactions) -> None:
    """The producer's task is what a consumer registered under the same spec receives."""
    import asyncio

    from qrpay.kernel.queue import TaskSpec

    received: list[dict[str, Any]] = []

    async def handler(payload: dict[str, Any]) -> None:
        received.append(payload)

    tx.queue.register(TaskSpec(name="transaction_callback", queue="payments_eda"), handler)
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    worker = asyncio.create_task(tx.queue.run_worker(["payments_eda"]))
    try:
        await eventually(lambda: received)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert [(p["operation_id"], p["status"]) for p in received] == [("h1", "succeeded")]


async def test_background_mode_processes_right_away(tmp_path: Path) -> None:

    queue = TaskQueue()
    ctx = make_context(
        "transactions", tmp_path, queue=queue, clock=FrozenClock(), background_jobs=True
    )
    async with running_service(ctx) as (_app, client):
        await client.put(
            "/v1/invoices/inv-1",
            json={
                "owner": "payments-eda",
                "order_id": "order-1",
                "user_id": "user-1",
                "currency": "RUB",
                "callback": {"queue": "payments_eda", "task": "transaction_callback"},
            },
        )
        started = await client.post(
            "/v1/invoices/inv-1/operations",
            json={
                "operation_id": "h1",
                "kind": "hold",
                "amount": "10",
                "payment_method": {"id": "c", "token": "sandbox-ok-1"},
            },
        )
        assert started.json()["status"] == "pending"
        connector: Any = queue.app.connector
        await eventually(lambda: connector.jobs)
        status = (await client.get("/v1/invoices/inv-1")).json()["operations"][0]["status"]
        assert status == "succeeded"
        assert [j["queueing_lock"] for j in connector.jobs.values()] == ["inv-1:h1:succeeded"]
