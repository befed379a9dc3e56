"""payments-eda's composition root: the only place that wires its real adapters.

``build(ctx)`` makes the HTTP app; ``build_worker(ctx)`` gives what ``qrpay worker
payments-eda`` needs to run the same queue consumers without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cashback.client import CashbackClient
from qrpay.eda.client import EdaClient
from qrpay.kernel.http import create_app
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.payments_eda import tasks
from qrpay.payments_eda.api import build_router
from qrpay.payments_eda.service import PaymentsMetrics, PaymentsService
from qrpay.transactions.client import TransactionsClient

log = structlog.get_logger("qrpay.payments_eda")

QUEUE_GAUGES_INTERVAL_SECONDS = 5.0


def _service(ctx: ServiceContext, queue: TaskQueue) -> PaymentsService:
    def wiring(name: str) -> dict[str, Any]:
        return {"session": ctx.http, "dependency": ctx.dependency(name), "metrics": ctx.metrics}

    return PaymentsService(
        runtime=ctx.runtime,
        clock=ctx.clock,
        queue=queue,
        eda=EdaClient(**wiring("eda")),
        cardstorage=CardstorageClient(**wiring("cardstorage")),
        transactions=TransactionsClient(**wiring("transactions")),
        cashback=CashbackClient(**wiring("cashback")),
        metrics=PaymentsMetrics.of(ctx.metrics),
    )


def _register(queue: TaskQueue, service: PaymentsService, ctx: ServiceContext) -> None:
    if tasks.TRANSACTION_CALLBACK.name in queue.app.tasks:
        return  # the app and a worker built in one process share the consumers
    tasks.register(queue, tasks.Handlers(service), ctx.runtime.config.payments)


async def _every(seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("background_job_failed", job=name, error=repr(exc))
        await asyncio.sleep(seconds)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build(ctx: ServiceContext) -> FastAPI:
    queue = ctx.queue
    run_workers = ctx.run_queue_workers
    if queue is None:
        # A private in-memory queue would lose callbacks on every restart and never see
        # the ones transactions puts elsewhere: refuse to start rather than fail quietly.
        raise RuntimeError(
            "payments-eda needs the task queue: set queue_database in secdist "
            "(production) or run it with `qrpay up` (embedded)"
        )
    service = _service(ctx, queue)
    _register(queue, service, ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.runtime.start()
        background: list[asyncio.Task[None]] = [
            asyncio.create_task(
                _every(QUEUE_GAUGES_INTERVAL_SECONDS, service.refresh_queue_gauges, "queue_gauges"),
                name="payments-eda-queue-gauges",
            )
        ]
        if run_workers:
            background.append(
                asyncio.create_task(
                    queue.run_worker([tasks.QUEUE], name="payments-eda"),
                    name="payments-eda-worker",
                )
            )
        try:
            yield
        finally:
            for task in reversed(background):
                await _stop(task)
            await ctx.runtime.stop()
            await ctx.http.close()

    app = create_app(
        service=ctx.name,
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        # Its state is its task queue: not ready while the queue's database does not answer.
        ready=queue.ping,
        description="The payer API (preorder, pay, payment status) and transaction callbacks.",
    )
    app.include_router(build_router(service))
    app.state.payments = service
    app.state.queue = queue
    return app


def build_worker(ctx: ServiceContext) -> tuple[list[str], AbstractAsyncContextManager[None]]:
    """The queues to consume and the resources the consumers need, for ``qrpay worker``.

    Usage::

        queues, resources = build_worker(ctx)
        async with resources:
            await ctx.queue.run_worker(queues)

    The handlers are registered on ``ctx.queue`` by this call; ``resources`` starts the
    config watcher and the queue gauges and closes the HTTP clients on exit.
    """
    queue = ctx.queue
    if queue is None:
        raise RuntimeError("payments-eda's worker needs ctx.queue (the durable task queue)")
    service = _service(ctx, queue)
    _register(queue, service, ctx)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        ctx.runtime.start()
        gauges = asyncio.create_task(
            _every(QUEUE_GAUGES_INTERVAL_SECONDS, service.refresh_queue_gauges, "queue_gauges")
        )
        try:
            yield
        finally:
            await _stop(gauges)
            await ctx.runtime.stop()
            await ctx.http.close()

    return [tasks.QUEUE], resources()
