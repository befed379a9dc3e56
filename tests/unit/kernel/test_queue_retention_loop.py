"""A worker given a retention removes old jobs as it runs, with the config read each round
(the removal itself is tested on PostgreSQL: tests/integration/test_queue_retention.py)."""

from __future__ import annotations

import asyncio
import contextlib

from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.queue import TaskQueue


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

    worker = asyncio.create_task(queue.run_worker(["q"], retention=retention))
    try:
        await asyncio.wait_for(twice.wait(), timeout=60)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await queue.close()
    assert [config.failed_jobs_days for config in seen[:2]] == [30, 7]
