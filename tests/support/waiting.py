"""Waiting on a condition in tests: a generous deadline and a frequent check, never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qrpay.kernel.queue import TaskQueue

# How long background work may take on a loaded shared 2-core box before a test gives up.
DEADLINE_SECONDS = 60.0


async def eventually(condition: Callable[[], object], timeout: float = DEADLINE_SECONDS) -> None:
    """Return once ``condition()`` is true, or when ``timeout`` passed (the caller asserts)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)


def until(condition: Callable[[], object], timeout: float = DEADLINE_SECONDS) -> bool:
    """``eventually`` for synchronous tests: True once ``condition()`` is, False at ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def work_until(
    queue: TaskQueue, done: asyncio.Event, queues: list[str], **worker: Any
) -> None:
    """Run a worker of ``queue`` on ``queues`` until ``done`` is set (a minute at most, else
    ``TimeoutError``), then stop the worker and close the queue."""
    task = asyncio.create_task(queue.run_worker(queues, **worker))
    try:
        await asyncio.wait_for(done.wait(), timeout=DEADLINE_SECONDS)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await queue.close()
