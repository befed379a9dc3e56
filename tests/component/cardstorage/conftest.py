from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from tests.support.services import make_context, running_service


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
