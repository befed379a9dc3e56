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


def card(user_id: str = "u1", **overrides: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "type": "card",
        "token": "tok_visa_ok",
        "system": "visa",
        "last4": "4242",
        "expiry_month": 12,
        "expiry_year": 2030,
        "available": True,
        **overrides,
    }


@pytest.fixture
async def cardstorage(
    tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    ctx = make_context("cardstorage", tmp_path, clock=frozen_clock)
    async with running_service(ctx) as running:
        yield running


@pytest.fixture
def client(cardstorage: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return cardstorage[1]


@pytest.fixture
def app(cardstorage: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return cardstorage[0]


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
