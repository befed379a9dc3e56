"""The one lifespan every service shares, the typed way to a service, the first revision."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends
from sqlalchemy import Column, Integer, MetaData, String, Table

from qrpay.kernel.migrations import DeclarationChanged, initial_revision, schema_fingerprint
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import Job, ServiceApp, ServiceContext, Wiring, provide, service_of
from tests.support.services import make_context


class Greeter:
    def __init__(self, events: list[str]) -> None:
        self.events = events


Greeting = Annotated[Greeter, Depends(provide(Greeter))]
router = APIRouter()


@router.get("/hello")
async def hello(greeter: Greeting) -> dict[str, int]:
    return {"events": len(greeter.events)}


def recording_context(tmp_path: Path, events: list[str]) -> ServiceContext:
    ctx = make_context("eda", tmp_path, queue=TaskQueue())
    ctx.owns_queue = True
    runtime, http, queue = ctx.runtime, ctx.http, ctx.queue
    assert queue is not None
    close_session = http.close

    def start() -> None:
        events.append("config started")

    async def stop() -> None:
        events.append("config stopped")

    async def close_http() -> None:
        events.append("http closed")
        await close_session()

    async def close_queue() -> None:
        events.append("queue closed")

    runtime.start = start  # type: ignore[method-assign]
    runtime.stop = stop  # type: ignore[method-assign]
    http.close = close_http  # type: ignore[method-assign]
    queue.close = close_queue  # type: ignore[method-assign]
    return ctx


async def test_the_lifespan_starts_and_closes_everything_once_in_order(tmp_path: Path) -> None:
    events: list[str] = []
    job_running = asyncio.Event()

    async def job() -> None:
        events.append("job started")
        job_running.set()
        try:
            await asyncio.Event().wait()
        finally:
            events.append("job stopped")

    async def on_start() -> None:
        events.append("started")

    async def on_stop() -> None:
        events.append("stopped")

    def wire(_ctx: ServiceContext) -> Wiring:
        return Wiring(
            services=[Greeter(events)],
            jobs=[Job("job", job)],
            on_start=[on_start],
            on_stop=[on_stop],
        )

    ctx = recording_context(tmp_path, events)
    app = ServiceApp(description="test", router=router, wire=wire).build(ctx)
    async with app.router.lifespan_context(app):
        await job_running.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/hello")).json() == {"events": 3}
        assert service_of(app, Greeter).events is events
    assert events == [
        "config started",
        "started",
        "job started",
        "job stopped",
        "stopped",
        "config stopped",
        "http closed",
        "queue closed",
    ]


def test_the_first_revision_refuses_changed_declarations() -> None:
    def table(*extra: Column[int]) -> Table:
        return Table("t", MetaData(), Column("id", String(8), primary_key=True), *extra)

    pinned = schema_fingerprint(table())
    assert schema_fingerprint(table()) == pinned
    changed = table(Column("n", Integer, nullable=True))
    assert schema_fingerprint(changed) != pinned
    upgrade, _downgrade = initial_revision(pinned, changed)
    with pytest.raises(DeclarationChanged, match="changed since this revision"):
        upgrade()
