"""The durable queue on PostgreSQL: a retry that collides with the same task put again.

At-least-once delivery can put a task again (same task id) while the first copy runs: the
queueing lock only covers waiting tasks. If the running copy then fails, procrastinate's
retry hits the lock (a unique violation) and, unhandled, left the job ``doing`` under a live
worker for ever: never finished, never recovered. The queue closes it instead and the copy
that waits does the work.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from qrpay.kernel.queue import TaskQueue, TaskSpec
from tests.support.payments_cluster import sql

pytestmark = pytest.mark.postgres

SPEC = TaskSpec(name="tests.flaky", queue="tests", max_attempts=5, backoff_seconds=0.1)


@pytest.fixture
def queue(pg_queue: TaskQueue) -> TaskQueue:
    return pg_queue


async def test_a_retry_superseded_by_the_same_task_queued_again_is_closed(
    queue: TaskQueue,
) -> None:
    runs: list[int] = []

    async def handler(payload: dict[str, Any]) -> None:
        runs.append(payload["n"])
        if len(runs) == 1:
            # The producer puts the same task again while this copy runs, then this copy fails.
            assert await queue.put(SPEC, task_id="same", payload={"n": 2})
            raise RuntimeError("the first try fails")

    queue.register(SPEC, handler)
    assert await queue.put(SPEC, task_id="same", payload={"n": 1})
    # One at a time: the copy put again waits while the first runs and fails.
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=1))
    try:
        deadline = time.monotonic() + 30
        while jobs := sql(queue.url or "", "SELECT id, status FROM procrastinate_jobs"):
            assert time.monotonic() < deadline, f"jobs left: {jobs}, runs: {runs}"
            assert not worker.done()
            await asyncio.sleep(0.1)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert runs == [1, 2]
