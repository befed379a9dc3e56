"""``TaskQueue.run_worker`` replaces a procrastinate worker that stopped by itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qrpay.kernel import queue as queue_module
from qrpay.kernel.queue import TaskQueue


async def test_a_worker_that_stops_or_crashes_is_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queue_module, "WORKER_RESTART_DELAY", 0.01)
    queue = TaskQueue()
    runs = 0
    running = asyncio.Event()

    async def fake_worker(**_options: Any) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            return  # procrastinate stops its worker when a side task fails
        if runs == 2:
            raise RuntimeError("the database went away at start")
        running.set()
        await asyncio.Event().wait()  # runs until cancelled

    monkeypatch.setattr(queue.app, "run_worker_async", fake_worker)
    worker = asyncio.create_task(queue.run_worker(["q"]))
    await asyncio.wait_for(running.wait(), timeout=5)
    assert runs == 3
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert runs == 3  # cancelling ends it: no restart
