"""The support tools' tests (issue 19): queue tasks left as a worker leaves them, on the
in-memory queue (procrastinate's testing connector), at times of the test's choosing."""

from datetime import UTC, datetime, timedelta
from typing import Any

from qrpay.kernel.queue import TaskQueue
from qrpay.payments_eda import tasks
from tests.support.component.payments_eda import ORDER_ID

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def task(
    queue: TaskQueue,
    payment_id: str,
    *,
    order_id: str = ORDER_ID,
    status: str = "todo",
    minute: int = 0,
    attempts: int = 0,
) -> int:
    """A cashback task of ``payment_id`` put on the queue, then left as a worker would
    leave it: ``failed`` after its tries, or waiting (``todo``) after ``attempts`` tries;
    its last event at ``minute`` past T0."""
    assert await queue.put(
        tasks.ACCRUE_CASHBACK,
        task_id=f"cashback:{order_id}:{payment_id}",
        payload={"order_id": order_id, "payment_id": payment_id},
    )
    connector: Any = queue.app.connector
    job_id: int = max(connector.jobs)
    at = T0 + timedelta(minutes=minute)
    events = connector.events[job_id]
    events.clear()
    events.append({"type": "deferred", "at": at - timedelta(seconds=30)})
    if status == "failed":
        events.append({"type": "started", "at": at - timedelta(seconds=1)})
        connector.jobs[job_id]["attempts"] = 2
        await connector.finish_job_run(job_id, "failed", delete_job=False)
        events[-1]["at"] = at
    elif attempts:
        events.append({"type": "started", "at": at - timedelta(seconds=1)})
        await connector.retry_job_run(job_id, retry_at=at + timedelta(seconds=5))
        connector.jobs[job_id]["attempts"] = attempts
        events[-1]["at"] = at
    return job_id
