"""Fixtures every tier uses: the mock downstream server, a frozen clock, one service in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from qrpay.runner.config import QrpayConfig
from tests.support.mockserver import MockServer
from tests.support.services import make_context, running_service


@pytest.fixture
async def mockserver() -> AsyncIterator[MockServer]:
    server = MockServer()
    await server.start()
    yield server
    await server.stop()
    assert not server.unmocked, f"calls to unmocked downstream paths: {server.unmocked}"


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def service_name() -> str:
    """The service ``service`` runs: a component folder's conftest names it."""
    raise pytest.UsageError("override the service_name fixture in the folder's conftest")


@pytest.fixture
def service_config() -> QrpayConfig | None:
    """The config ``service`` starts with; ``None`` is the development config."""
    return None


@pytest.fixture
async def service(
    service_name: str,
    service_config: QrpayConfig | None,
    tmp_path: Path,
    frozen_clock: FrozenClock,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The named service's app with its lifespan run on the frozen clock, and a client to it."""
    ctx = make_context(service_name, tmp_path, config=service_config, clock=frozen_clock)
    async with running_service(ctx) as running:
        yield running


@pytest.fixture
def client(service: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return service[1]


@pytest.fixture
def app(service: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return service[0]
