"""The support tools on the durable queue (issue 19): procrastinate on PostgreSQL, a real
worker. A task that failed for good is found by its order, retried through procrastinate's
retry, and runs again; only a failed task is retried."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from qrpay.kernel.errors import Conflict, NotFound
from qrpay.kernel.queue import JobView, TaskQueue, TaskSpec

pytestmark = pytest.mark.postgres

# No retry: the first failure is final.
SPEC = TaskSpec(name="tests.support_flaky", queue="tests", max_attempts=0)


async def until(queue: TaskQueue, job_id: int, status: str, worker: asyncio.Task[Any]) -> JobView:
    """The job once procrastinate's tables say ``status`` (the worker writes it after the
    handler returned or raised, in its own time)."""
    deadline = time.monotonic() + 30
    while True:
        job = await queue.job(SPEC.queue, job_id)
        if job.status == status:
            return job
        assert time.monotonic() < deadline, f"job {job} never became {status}"
        assert not worker.done()
        await asyncio.sleep(0.05)


async def test_a_failed_task_is_found_by_its_order_and_retried(pg_queue: TaskQueue) -> None:
    queue = pg_queue
    runs: list[str] = []
    second_run = asyncio.Event()

    async def handler(payload: dict[str, Any]) -> None:
        runs.append(payload["order_id"])
        if len(runs) == 1:
            raise RuntimeError("the gateway is down")
        second_run.set()

    queue.register(SPEC, handler)
    assert await queue.put(SPEC, task_id="t-o1", payload={"order_id": "o1", "payment_id": "p1"})
    assert await queue.put(SPEC, task_id="t-o2", payload={"order_id": "o2"})
    [mine] = await queue.jobs(SPEC.queue, field=("order_id", "o1"))
    assert (mine.status, mine.task_id, mine.payload) == (
        "todo",
        "t-o1",
        {"order_id": "o1", "payment_id": "p1"},
    )
    assert mine.last_event == "deferred"
    with pytest.raises(Conflict) as waiting:
        await queue.retry_failed(SPEC.queue, mine.id)
    assert waiting.value.code == "task_not_failed"

    # Only o1's task runs (and fails) before the retry: o2's is removed first.
    others = [j.id for j in await queue.jobs(SPEC.queue, field=("order_id", "o2"))]
    await queue.app.job_manager.cancel_job_by_id_async(others[0], delete_job=True)
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=1))
    try:
        failed = await until(queue, mine.id, "failed", worker)
        assert failed.attempts == 1
        assert failed.last_event == "failed"
        assert failed.started_at is not None
        assert failed.last_event_at is not None
        assert failed.started_at <= failed.last_event_at
        listed = await queue.jobs(SPEC.queue, status="failed")
        assert [j.id for j in listed] == [mine.id]

        retried = await queue.retry_failed(SPEC.queue, mine.id)
        assert retried.status in ("todo", "doing")  # the worker may have taken it already
        await asyncio.wait_for(second_run.wait(), 30)
        assert runs == ["o1", "o1"]
        # A success is deleted as it finishes: nothing of o1 is left.
        deadline = time.monotonic() + 30
        while await queue.jobs(SPEC.queue, field=("order_id", "o1")):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    with pytest.raises(NotFound) as gone:
        await queue.retry_failed(SPEC.queue, mine.id)
    assert gone.value.code == "task_not_found"


async def test_a_failed_task_queued_anew_is_left_to_the_new_copy(pg_queue: TaskQueue) -> None:
    queue = pg_queue

    async def handler(payload: dict[str, Any]) -> None:
        raise RuntimeError("fails")

    queue.register(SPEC, handler)
    assert await queue.put(SPEC, task_id="same", payload={"order_id": "o1"})
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=1))
    try:
        [job] = await queue.jobs(SPEC.queue)
        await until(queue, job.id, "failed", worker)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    # The producer puts the same task again (same task id): that copy waits.
    assert await queue.put(SPEC, task_id="same", payload={"order_id": "o1"})
    with pytest.raises(Conflict) as refused:
        await queue.retry_failed(SPEC.queue, job.id)
    assert refused.value.code == "task_already_queued"
    assert (await queue.job(SPEC.queue, job.id)).status == "failed"
    with pytest.raises(NotFound):
        await queue.job("another-queue", job.id)
