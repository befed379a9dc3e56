from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from tests.support.component.eda import TTL
from tests.support.services import make_context, running_service


@pytest.fixture
async def eda(
    tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    from tests.support.services import dev_config

    config = dev_config(orders={"ttl_seconds": TTL, "ttl_check_interval_seconds": 30})
    ctx = make_context("eda", tmp_path, config=config, clock=frozen_clock)
    async with running_service(ctx) as running:
        yield running


@pytest.fixture
def client(eda: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return eda[1]


@pytest.fixture
def app(eda: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return eda[0]
