"""The composition root of iiko-integration: the only place its real adapters are wired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qrpay.eda.client import EdaClient
from qrpay.iiko_integration.api import build_router
from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext


def build(ctx: ServiceContext) -> FastAPI:
    eda_client = EdaClient(session=ctx.http, dependency=ctx.dependency("eda"), metrics=ctx.metrics)
    service = IikoService(
        runtime=ctx.runtime,
        eda_client=eda_client,
        orders_created=ctx.metrics.counter(
            "qrpay_orders_created_with_qr",
            "Orders created from a POS pre-check, with a QR code to print",
            ("client_id",),
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.runtime.start()
        try:
            yield
        finally:
            await ctx.runtime.stop()
            await ctx.http.close()

    app = create_app(
        service=ctx.name,
        metrics=ctx.metrics,
        max_body=ctx.max_body,
        max_in_flight=ctx.max_in_flight,
        lifespan=lifespan,
        description="POS API (create orders, poll statuses) and the app's availability API.",
    )
    app.include_router(build_router(service))
    app.state.iiko_service = service
    return app
