"""Queue retention on PostgreSQL (procrastinate's remove_old_jobs): cancelled and aborted
jobs go ``finished_jobs_hours`` after they finished, failed ones ``failed_jobs_days`` after;
jobs still to run stay whatever their age."""

from __future__ import annotations

import pytest

from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.queue import TaskQueue, TaskSpec
from tests.support.payments_cluster import sql

pytestmark = pytest.mark.postgres

SPEC = TaskSpec(name="tests.kept", queue="tests")


@pytest.fixture
def queue(pg_queue: TaskQueue) -> TaskQueue:
    async def handler(_payload: dict[str, object]) -> None:
        raise AssertionError("no worker runs here")

    pg_queue.register(SPEC, handler)
    return pg_queue


async def job(queue: TaskQueue, name: str, status: str, hours_ago: float) -> None:
    """A job now ``status`` whose every event happened ``hours_ago``."""
    assert await queue.put(SPEC, task_id=name, payload={"name": name})
    url = queue.url or ""
    if status != "todo":
        # Through doing, as a worker takes it: the triggers record each change as an event.
        sql(
            url,
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE queueing_lock = %s RETURNING id",
            name,
        )
        sql(
            url,
            "UPDATE procrastinate_jobs SET status = %s WHERE queueing_lock = %s RETURNING id",
            status,
            name,
        )
    sql(
        url,
        "UPDATE procrastinate_events SET at = now() - make_interval(secs => %s) WHERE job_id ="
        " (SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s) RETURNING job_id",
        hours_ago * 3600,
        name,
    )


async def test_finished_jobs_go_after_their_time_and_jobs_to_run_stay(queue: TaskQueue) -> None:
    await job(queue, "cancelled-old", "cancelled", 73)
    await job(queue, "aborted-old", "aborted", 100)
    await job(queue, "cancelled-recent", "cancelled", 71)
    await job(queue, "failed-old", "failed", 31 * 24)
    await job(queue, "failed-recent", "failed", 29 * 24)
    await job(queue, "todo-old", "todo", 1000)

    await queue.remove_old_jobs(RetentionConfig(finished_jobs_hours=72, failed_jobs_days=30))

    kept = sql(queue.url or "", "SELECT queueing_lock, status FROM procrastinate_jobs ORDER BY 1")
    assert kept == [
        ("cancelled-recent", "cancelled"),
        ("failed-recent", "failed"),
        ("todo-old", "todo"),
    ]
