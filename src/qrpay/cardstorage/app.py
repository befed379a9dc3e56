"""cardstorage's composition root: the only place that wires its real adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qrpay.cardstorage.api import router
from qrpay.cardstorage.service import PaymentMethodService
from qrpay.kernel.db import Database
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext


def build(ctx: ServiceContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(ctx.database_url())
        app.state.db = db
        app.state.payment_methods = PaymentMethodService(db, ctx.clock)
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
        service="cardstorage",
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        ready=ready,
        description="A user's saved payment methods: tokens and masks, never card numbers.",
    )
    app.include_router(router)
    return app
