"""iiko-integration following a real eda on PostgreSQL: a change reaches memory through the
feed, a restarted instance answers right from its first poll, and a POS resumes its push
cursor on another instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders
from qrpay.eda.service import OrderService
from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import create
from tests.support.component.iiko_integration import HEADERS, list_orders
from tests.support.services import (
    dev_config,
    eda_on_postgres,
    make_context,
    point_services_at,
    running_service,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.postgres

TTL = 3600


@pytest.fixture
async def eda(
    migrated_pg_url: str, tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    async with eda_on_postgres(tmp_path, migrated_pg_url, frozen_clock) as served_eda:
        yield served_eda


def iiko(
    tmp_path: Path, eda_url: str, name: str
) -> AbstractAsyncContextManager[tuple[IikoService, httpx.AsyncClient]]:
    @asynccontextmanager
    async def start() -> AsyncIterator[tuple[IikoService, httpx.AsyncClient]]:
        config = point_services_at(dev_config(feed={"wait_ms": 100}), eda_url, "eda")
        ctx = make_context("iiko-integration", tmp_path / name, config=config, background_jobs=True)
        async with running_service(ctx) as (app, client):
            service = service_of(app, IikoService)
            await eventually(service.follower.is_fresh)
            assert service.follower.is_fresh()
            yield service, client

    return start()


async def poll(client: httpx.AsyncClient, order_id: str) -> str:
    response = await list_orders(client, [order_id])
    assert response.status_code == 200, response.text
    status: str = response.json()["orders"][0]["status"]
    return status


@pytest.fixture
def eda_service(eda: tuple[FastAPI, httpx.AsyncClient, str]) -> OrderService:
    return service_of(eda[0], OrderService)


async def test_changes_reach_memory_and_a_restarted_instance_answers_at_once(
    eda: tuple[FastAPI, httpx.AsyncClient, str],
    eda_service: OrderService,
    tmp_path: Path,
    frozen_clock: FrozenClock,
) -> None:
    _app, eda_client, eda_url = eda
    async with iiko(tmp_path, eda_url, "first") as (service, client):
        order_id = (await create(eda_client, "a"))["order"]["order_id"]
        assert await poll(client, order_id) == "WAITING"
        # The TTL's set-based cancel reaches memory through the feed, before anyone asks.
        frozen_clock.advance(TTL * 25)
        assert await close_expired_orders(eda_service, TTL) == 1

        def canceled() -> bool:
            view = service.memory.view(order_id)
            return view is not None and view.status == "CANCELED"

        await eventually(canceled)
        assert canceled()
        assert await poll(client, order_id) == "CANCELED"
    # A new instance starts from the feed's tail with nothing in memory: it reads eda.
    async with iiko(tmp_path, eda_url, "second") as (service, client):
        assert service.memory.view(order_id) is None
        assert await poll(client, order_id) == "CANCELED"


async def test_a_pos_resumes_its_push_cursor_on_another_instance(
    eda: tuple[FastAPI, httpx.AsyncClient, str], tmp_path: Path
) -> None:
    _app, eda_client, eda_url = eda
    params = {"client_id": "rest-1", "wait_ms": "0"}
    async with iiko(tmp_path, eda_url, "first") as (_service, client):
        first = await client.get("/orders/changes", params=params, headers=HEADERS)
        assert first.status_code == 200, first.text
        assert first.json()["orders"] == []
    order_id = (await create(eda_client, "while-away"))["order"]["order_id"]
    async with iiko(tmp_path, eda_url, "second") as (_service, client):
        resumed = await client.get(
            "/orders/changes",
            params={**params, "after": first.json()["cursor"], "wait_ms": "30000"},
            headers=HEADERS,
        )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["orders"] == [{"id": order_id, "status": "WAITING"}]
