"""The TTL loop as the app runs it: started by the lifespan, alive through database errors."""

import asyncio
from pathlib import Path

import httpx
import pytest

from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from tests.support.component.eda import create
from tests.support.services import dev_config, make_context, running_service


async def wait_for(client: httpx.AsyncClient, order_id: str, status: str) -> None:
    for _ in range(200):
        if (await client.get(f"/v1/orders/{order_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"order never became {status}")


async def test_the_loop_survives_errors_and_closes_expired_orders(
    tmp_path: Path, frozen_clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = []
    real = OrderService.close_expired

    async def flaky(self: OrderService, ttl_seconds: int) -> int:
        if len(failures) < 3:
            failures.append(1)
            raise OSError("database is down")
        return await real(self, ttl_seconds)

    monkeypatch.setattr(OrderService, "close_expired", flaky)
    config = dev_config(orders={"ttl_seconds": 60, "ttl_check_interval_seconds": 0.01})
    ctx = make_context("eda", tmp_path, config=config, clock=frozen_clock, background_jobs=True)
    async with running_service(ctx) as (_app, client):
        order_id = (await create(client))["order"]["order_id"]
        frozen_clock.advance(61)
        await wait_for(client, order_id, "CANCELED")
        assert len(failures) == 3
        metrics = (await client.get("/metrics")).text
        assert "qrpay_orders_canceled_by_ttl_total 1.0" in metrics


async def test_no_loop_without_background_jobs(tmp_path: Path, frozen_clock: FrozenClock) -> None:
    config = dev_config(orders={"ttl_seconds": 60, "ttl_check_interval_seconds": 0.01})
    ctx = make_context("eda", tmp_path, config=config, clock=frozen_clock)
    async with running_service(ctx) as (_app, client):
        order_id = (await create(client))["order"]["order_id"]
        frozen_clock.advance(61)
        await asyncio.sleep(0.1)
        assert (await client.get(f"/v1/orders/{order_id}")).json()["status"] == "WAITING"
