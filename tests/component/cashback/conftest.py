from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from tests.support.services import make_context, running_service


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
