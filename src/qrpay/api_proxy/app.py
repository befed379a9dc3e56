"""The composition root of api-proxy: the only place its real adapters are wired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from qrpay.api_proxy.api import build_router
from qrpay.api_proxy.client import PaymentsEdaForwarder
from qrpay.api_proxy.pages import STATIC_DIR
from qrpay.api_proxy.service import ApiProxyService
from qrpay.iiko_integration.client import IikoIntegrationClient
from qrpay.kernel.http import create_app
from qrpay.kernel.service import ServiceContext


def build(ctx: ServiceContext) -> FastAPI:
    # One aiohttp session (ctx.http) for every downstream.
    service = ApiProxyService(
        runtime=ctx.runtime,
        clock=ctx.clock,
        payments=PaymentsEdaForwarder(
            session=ctx.http, dependency=ctx.dependency("payments-eda"), metrics=ctx.metrics
        ),
        iiko=IikoIntegrationClient(
            session=ctx.http, dependency=ctx.dependency("iiko-integration"), metrics=ctx.metrics
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
        description=(
            "The guest's entry: development sign-in, payments-eda's payer API and "
            "iiko-integration's app API with the user's headers, and the payer web page."
        ),
    )
    app.include_router(build_router(service))
    app.mount("/go-pay/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.api_proxy_service = service
    return app
