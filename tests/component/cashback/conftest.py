from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from tests.support.processes import free_port
from tests.support.services import make_context, running_service


def accrual(user_id: str = "u1", amount: str = "10.00", **overrides: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "amount": amount,
        "currency": "RUB",
        "source": "rest-1",
        **overrides,
    }


async def accrue(client: httpx.AsyncClient, order_id: str = "o1", **body: Any) -> httpx.Response:
    return await client.put(f"/v1/accruals/{order_id}", json=accrual(**body))


@pytest.fixture
async def cashback(
    tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    ctx = make_context("cashback", tmp_path, clock=frozen_clock)
    async with running_service(ctx) as running:
        yield running


@pytest.fixture
def client(cashback: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return cashback[1]


@pytest.fixture
def app(cashback: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return cashback[0]


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
