"""Build one service in-process for a test, its downstreams pointed at the mock server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from qrpay.kernel.clock import Clock, FrozenClock
from qrpay.kernel.config import Secdist, load_yaml
from qrpay.kernel.migrations import upgrade
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.service import ServiceApp, ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG, Settings
from qrpay.runner.config import QrpayConfig, parse_config, parse_secdist
from qrpay.runner.context import build_app
from qrpay.runner.registry import has_database
from tests.support.processes import free_port
from tests.support.tickets import LegitimateCaller


def dev_config(**overrides: Any) -> QrpayConfig:
    data = load_yaml(REPO_DEV_CONFIG / "config.yaml")
    data.update(overrides)
    return parse_config(data)


def dev_secdist(**overrides: Any) -> Secdist:
    data = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")
    data.update(overrides)
    return parse_secdist(data)


def point_services_at(config: QrpayConfig, base_url: str, *names: str, **extra: Any) -> QrpayConfig:
    data = config.model_dump(mode="json")
    for name in names:
        data["services"][name] = {**data["services"][name], "base_url": base_url, **extra}
    return parse_config(data)


def make_context(
    service: str,
    tmp_path: Path,
    *,
    config: QrpayConfig | None = None,
    secdist: Secdist | None = None,
    clock: Clock | None = None,
    background_jobs: bool = False,
    queue: TaskQueue | None = None,
    queue_workers: bool = False,
) -> ServiceContext:
    runtime = RuntimeConfig.fixed(config or dev_config(), secdist or dev_secdist())
    settings = Settings(data_dir=tmp_path)
    return ServiceContext(
        name=service,
        settings=settings,
        runtime=runtime,
        clock=clock or FrozenClock(),
        run_background_jobs=background_jobs,
        queue=queue,
        run_queue_workers=queue_workers,
    )


@asynccontextmanager
async def running_service(
    ctx: ServiceContext, *, migrate: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service's app with its lifespan run, and an httpx client talking to it in-process.

    ``migrate=False`` skips the migrations, for a service whose database is down.
    """
    if migrate and has_database(ctx.name):
        upgrade(ctx.name, ctx.database_url())
    app = build_app(ctx)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # Every request carries the ticket of a caller its route allows, unless the test
        # gives its own ``X-Ya-Service-Ticket`` (tests/support/tickets.py).
        auth = LegitimateCaller(app, ctx)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", auth=auth
        ) as client:
            yield app, client


@asynccontextmanager
async def served_in_process(
    declaration: ServiceApp, ctx: ServiceContext, *, fast: bool
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``declaration``'s app, built on ``ctx`` with its lifespan run: as built
    (``fast``) or with its fast routes taken away (every request through FastAPI), to
    compare the two answers."""
    app = (declaration if fast else dataclasses.replace(declaration, serve_fast=False)).build(ctx)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs on a real local port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def eda_on_postgres(
    tmp_path: Path, database_url: str, clock: Clock, *, migrate: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    """eda on the PostgreSQL database at ``database_url``, data in ``tmp_path/eda``, served on
    a real local port: its app, an in-process client and its base URL."""
    secdist = dev_secdist(databases={"eda": database_url})
    ctx = make_context("eda", tmp_path / "eda", secdist=secdist, clock=clock)
    async with running_service(ctx, migrate=migrate) as (app, client), served(app) as url:
        yield app, client, url
