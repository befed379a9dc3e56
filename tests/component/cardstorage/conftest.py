from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
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
