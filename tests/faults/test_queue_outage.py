"""The durable queue while its PostgreSQL is stopped and started again (a private server).

A put during the outage fails fast and cleanly (``database_unavailable``, which the request
answers as a 503), puts work again soon after the server is back, and the very same worker
goes on consuming: nothing is restarted by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qrpay.kernel.errors import DependencyUnavailable
from qrpay.kernel.queue import POOL_WAIT_SECONDS, TaskQueue, TaskSpec
from tests.support.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

SPEC = TaskSpec(name="tests.record", queue="tests", max_attempts=5, backoff_seconds=0.2)


@pytest.fixture
async def queue(private_postgres: PrivatePostgres) -> AsyncIterator[TaskQueue]:
    instance = TaskQueue(private_postgres.admin_url)
    await instance.apply_schema()
    try:
        yield instance
    finally:
        await instance.close()


def recorded(queue: TaskQueue) -> list[int]:
    """The ``n`` of each task of ``SPEC`` the queue's worker ran, in order."""
    seen: list[int] = []

    async def record(payload: dict[str, Any]) -> None:
        seen.append(payload["n"])

    queue.register(SPEC, record)
    return seen


async def put_when_back(queue: TaskQueue, n: int, back: float, what: str) -> None:
    """Put task ``n`` again and again until the queue takes it; fail with ``what`` when it
    still refuses 15 s after ``back`` (the database's start)."""
    while True:
        try:
            await queue.put(SPEC, task_id=f"t{n}", payload={"n": n})
            return
        except DependencyUnavailable:
            assert time.monotonic() - back < 15, what


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        await asyncio.sleep(0.05)


async def test_the_queue_and_its_worker_ride_out_a_database_restart(
    queue: TaskQueue, private_postgres: PrivatePostgres
) -> None:
    seen = recorded(queue)
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=2))
    try:
        await queue.put(SPEC, task_id="t1", payload={"n": 1})
        await wait_for(lambda: seen == [1], 15, "the first task was not consumed")

        await asyncio.to_thread(private_postgres.stop)
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as refused:
            await queue.put(SPEC, task_id="t2", payload={"n": 2})
        took = time.monotonic() - started
        assert refused.value.code == "database_unavailable"
        assert took < POOL_WAIT_SECONDS + 5, f"a put took {took:.1f}s to fail"
        with pytest.raises(DependencyUnavailable):
            await queue.ping()
        await asyncio.sleep(2)  # the worker's polls and heartbeats fail meanwhile

        await asyncio.to_thread(private_postgres.start)
        back = time.monotonic()
        await put_when_back(queue, 3, back, "puts still fail 15 s after the restart")
        first_put = time.monotonic() - back
        await wait_for(lambda: seen == [1, 3], 15, f"the worker did not go on ({seen})")
        consumed = time.monotonic() - back
        await queue.ping()
        assert not worker.done(), "the worker stopped"
        print(
            f"\nqueue outage: a put failed in {took:.2f}s while down; after the restart the"
            f" first put worked at {first_put:.2f}s, the same worker consumed at {consumed:.2f}s"
        )
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_a_queue_and_worker_started_while_the_database_is_down_work_once_it_is_up(
    private_postgres: PrivatePostgres,
) -> None:
    schema = TaskQueue(private_postgres.admin_url)
    await schema.apply_schema()
    await schema.close()
    await asyncio.to_thread(private_postgres.stop)

    queue = TaskQueue(private_postgres.admin_url)
    seen = recorded(queue)
    # psycopg_pool closes a pool for good when it is not filled within procrastinate's
    # opening wait: the queue opens without waiting instead.
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=2))
    try:
        with pytest.raises(DependencyUnavailable):
            await queue.put(SPEC, task_id="t1", payload={"n": 1})
        await asyncio.to_thread(private_postgres.start)
        await put_when_back(queue, 2, time.monotonic(), "puts still fail 15 s after the start")
        await wait_for(lambda: seen == [2], 20, f"the worker did not start consuming ({seen})")
        assert not worker.done(), "the worker stopped"
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.close()
