"""eda's composition root: the only place that wires its real adapters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from qrpay.eda.api import router
from qrpay.eda.jobs import refresh_open_orders, run_ttl_loop
from qrpay.eda.metrics import EdaMetrics
from qrpay.eda.service import OrderService
from qrpay.kernel.db import Database
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext

log = structlog.get_logger("qrpay.eda")


def build(ctx: ServiceContext) -> FastAPI:
    metrics = EdaMetrics.register(ctx.metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(ctx.database_url())
        service = OrderService(db, ctx.clock, metrics)
        app.state.db = db
        app.state.orders = service
        ctx.runtime.start()
        try:
            await refresh_open_orders(service)
        except Exception as exc:
            # Start anyway: readiness reports the database, the job retries the gauge.
            log.warning("open_orders_refresh_failed", error=repr(exc))
        ttl_task: asyncio.Task[None] | None = None
        if ctx.run_background_jobs:
            ttl_task = asyncio.create_task(
                run_ttl_loop(service, lambda: ctx.runtime.config.orders), name="eda-ttl"
            )
        try:
            yield
        finally:
            if ttl_task is not None:
                ttl_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ttl_task
            await ctx.runtime.stop()
            await db.dispose()
            await ctx.http.close()

    async def ready() -> None:
        await app.state.db.ping()

    app = create_app(
        service="eda",
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        ready=ready,
        description="The system of record for restaurant orders.",
    )
    app.include_router(router)
    return app
