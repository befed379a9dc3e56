"""A worker given a retention removes old jobs as it runs, with the config read each round
(the removal itself is tested on PostgreSQL: tests/integration/test_queue_retention.py)."""

from __future__ import annotations

import asyncio

from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.queue import TaskQueue
from tests.support.waiting import work_until


async def test_a_worker_with_a_retention_removes_old_jobs_every_interval() -> None:
    queue = TaskQueue()
    configs = [RetentionConfig(interval_seconds=0.01, failed_jobs_days=days) for days in (30, 7)]
    current = iter(configs)
    seen: list[RetentionConfig] = []
    twice = asyncio.Event()

    async def remove_old_jobs(retention: RetentionConfig) -> None:
        seen.append(retention)
        if len(seen) == 2:
            twice.set()

    queue.remove_old_jobs = remove_old_jobs  # type: ignore[method-assign]
    latest = configs[0]

    def retention() -> RetentionConfig:
        nonlocal latest
        latest = next(current, latest)  # a reload after the first round
        return latest

    await work_until(queue, twice, ["q"], retention=retention)
    assert [config.failed_jobs_days for config in seen[:2]] == [30, 7]
