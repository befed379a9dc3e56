"""cashback's composition root: the only place that wires its real adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qrpay.cashback.api import router
from qrpay.cashback.metrics import CashbackMetrics
from qrpay.cashback.service import CashbackService
from qrpay.kernel.db import Database
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext


def build(ctx: ServiceContext) -> FastAPI:
    metrics = CashbackMetrics.register(ctx.metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(ctx.database_url())
        app.state.db = db
        app.state.cashback = CashbackService(
            db,
            ctx.clock,
            metrics,
            # The live config, so a reload flips the switch without a restart.
            failing=lambda: ctx.runtime.config.cashback_service.fail_accruals,
        )
        ctx.runtime.start()
        try:
            yield
        finally:
            await ctx.runtime.stop()
            await db.dispose()
            await ctx.http.close()

    async def ready() -> None:
        await app.state.db.ping()

    app = create_app(
        service="cashback",
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        ready=ready,
        description="The cashback ledger: one accrual per order, balances and history.",
    )
    app.include_router(router)
    return app
