"""``qrpay worker NAME``: a service's queue consumers on the durable (PostgreSQL) queue.

The service's ``app.py`` provides ``build_worker(ctx) -> (queues, resources)``: it
registers the consumers on ``ctx.queue`` and returns the queues to consume and an
async context manager for what the consumers need. The worker runs until SIGTERM or
SIGINT, then stops taking tasks and lets the ones in flight finish (procrastinate's
graceful shutdown); a second signal cancels them (they are retried elsewhere, since a
worker that stops heart-beating has its tasks recovered by the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog

from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.runner.registry import SERVICE_MODULES

log = structlog.get_logger("qrpay.worker")

BuildWorker = Callable[[ServiceContext], tuple[list[str], AbstractAsyncContextManager[Any]]]


class WorkerError(Exception):
    """A start-up failure already put into one line."""


def worker_factory(service: str) -> BuildWorker:
    module = importlib.import_module(SERVICE_MODULES[service])
    build = getattr(module, "build_worker", None)
    if build is None:
        raise WorkerError(f"{service} has no queue consumers (no build_worker in its app.py)")
    factory: BuildWorker = build
    return factory


def services_with_workers() -> list[str]:
    found = []
    for name, module_name in SERVICE_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "build_worker"):
            found.append(name)
    return found


async def run_worker(
    ctx: ServiceContext,
    *,
    concurrency: int,
    on_started: Callable[[list[str]], None] | None = None,
) -> None:
    """Consume the service's queues on ``ctx.queue`` until SIGTERM/SIGINT."""
    queue = ctx.queue
    if queue is None:
        raise WorkerError("the worker needs a queue")
    queues, resources = worker_factory(ctx.name)(ctx)
    loop = asyncio.get_running_loop()
    await queue.open()
    try:
        async with resources:
            consumer = asyncio.create_task(
                queue.run_worker(
                    queues,
                    concurrency=concurrency,
                    name=f"{ctx.name}-worker",
                    retention=lambda: ctx.runtime.config.retention,
                ),
                name=f"{ctx.name}-worker",
            )
            signals = 0

            def stop() -> None:
                nonlocal signals
                signals += 1
                if signals == 1:
                    log.info("worker_stopping", service=ctx.name, graceful=True)
                    # procrastinate stops fetching and waits for the tasks in flight.
                    consumer.cancel()
                else:
                    log.warning("worker_stopping", service=ctx.name, graceful=False)
                    _cancel_running_jobs(queue)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop)
            try:
                if on_started is not None:
                    on_started(queues)
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
    finally:
        await queue.close()


def _cancel_running_jobs(queue: TaskQueue) -> None:
    # procrastinate names each job's task "process job <task>[<id>]".
    for task in asyncio.all_tasks():
        if task.get_name().startswith("process job "):
            task.cancel()
