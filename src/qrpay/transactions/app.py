"""transactions' composition root: the only place that wires its real adapters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from qrpay.kernel.db import Database
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext
from qrpay.transactions.api import router
from qrpay.transactions.gateway import build_gateway
from qrpay.transactions.jobs import run_relay_loop
from qrpay.transactions.metrics import TransactionsMetrics
from qrpay.transactions.service import TransactionsService

log = structlog.get_logger("qrpay.transactions")


class QueueRequired(RuntimeError):
    """transactions reports outcomes by queue tasks: it cannot run without a queue."""


def build(ctx: ServiceContext) -> FastAPI:
    metrics = TransactionsMetrics.register(ctx.metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue = ctx.queue
        if queue is None:
            raise QueueRequired(
                "transactions needs the task queue (ServiceContext.queue) to deliver "
                "operation callbacks; none was given"
            )
        await queue.open()
        db = Database(ctx.database_url())
        runtime = ctx.runtime
        gateway = build_gateway(lambda: runtime.config.transactions.gateway)
        service = TransactionsService(
            db,
            ctx.clock,
            metrics,
            gateway,
            queue,
            lambda: runtime.config.transactions,
            # Tests without background jobs drive processing step by step themselves.
            process_inline=ctx.run_background_jobs,
        )
        app.state.db = db
        app.state.transactions = service
        ctx.runtime.start()
        relay: asyncio.Task[None] | None = None
        if ctx.run_background_jobs:
            relay = asyncio.create_task(
                run_relay_loop(service, lambda: runtime.config.transactions),
                name="transactions-relay",
            )
        try:
            yield
        finally:
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            await service.close()
            await ctx.runtime.stop()
            await db.dispose()
            await ctx.http.close()
            # The queue belongs to the caller (shared by every service in the embedded mode).

    async def ready() -> None:
        await app.state.db.ping()

    app = create_app(
        service="transactions",
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        ready=ready,
        description="Invoices and their hold/clear/unhold operations through a payment gateway.",
    )
    app.include_router(router)
    return app
