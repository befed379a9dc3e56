"""A slow eda: POS requests end 503 within their deadlines, the bulkhead refuses the
ones beyond eda's share at once, and the app endpoints keep answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from qrpay.kernel.service import ServiceContext
from tests.support.component.iiko_integration import HEADERS, list_orders, valid_order
from tests.support.mockserver import MockServer, slow
from tests.support.services import dev_config, running_service

# Seconds a 503 may come after its deadline on a busy shared box: still well below the
# 2 s eda takes, so no 503 here can be eda's late answer.
SLACK = 0.7


def deadlines(status_ms: int, create_ms: int) -> Any:
    data = dev_config().model_dump(mode="json")
    data["orders"]["status_deadline_ms"] = status_ms
    data["orders"]["create_deadline_ms"] = create_ms
    return dev_config(orders=data["orders"])


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def poll(client: httpx.AsyncClient, order_id: str) -> Any:
    return list_orders(client, [order_id])


async def test_queued_polls_end_503_within_the_status_deadline(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    # eda's timeout is longer than the deadline, and four shared reads at most run at
    # once: the polls queued behind them must give up at their deadline all the same.
    mockserver.handler("/v1/orders/statuses")(slow(2.0, lambda _r: {"orders": []}))
    ctx = iiko_context(deadlines(300, 2000), timeout_ms=5000)
    async with running_service(ctx) as (_app, client):
        answers = await asyncio.gather(*(timed(poll(client, f"o-{i}")) for i in range(20)))
    for response, elapsed in answers:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "eda_unavailable"
        assert elapsed < 0.3 + SLACK


async def test_the_bulkhead_refuses_polls_and_creates_beyond_edas_share_at_once(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    release = asyncio.Event()

    async def held(_request: Any) -> dict[str, Any]:
        await release.wait()
        return {"orders": []}

    statuses = mockserver.handler("/v1/orders/statuses")(held)
    create = mockserver.handler("/v1/orders")(lambda _r: {})
    ctx = iiko_context(deadlines(5000, 5000), timeout_ms=5000, max_in_flight=3)
    async with running_service(ctx) as (_app, client):
        waiting = [asyncio.create_task(poll(client, f"o-{i}")) for i in range(3)]
        while statuses.times_called < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        # eda's three slots are taken by waiting polls: more fail fast, creates too.
        refused, elapsed = await timed(poll(client, "o-more"))
        assert refused.status_code == 503
        assert refused.json()["code"] == "eda_unavailable"
        assert elapsed < 0.5
        created, elapsed = await timed(client.post("/orders", json=valid_order(), headers=HEADERS))
        assert created.status_code == 503, created.text
        assert elapsed < 0.5
        assert create.times_called == 0
        # The endpoints that do not need eda answer as usual.
        app = await client.get(
            "/availability", params={"nearest_zone": "moscow", "uuid": "u", "phone_id": "p"}
        )
        assert app.json() == {"is_available": True}
        release.set()
        assert [(await task).status_code for task in waiting] == [200] * 3
        # The slots are free again.
        assert (await poll(client, "o-after")).status_code == 200
