from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.runner.config import QrpayConfig
from tests.support.component.api_proxy import Started, sign_in
from tests.support.mockserver import MockServer
from tests.support.services import dev_config, make_context, point_services_at, running_service


@pytest.fixture
def proxy_config(mockserver: MockServer) -> QrpayConfig:
    return point_services_at(
        dev_config(), mockserver.base_url, "payments-eda", "iiko-integration", retries=0
    )


@pytest.fixture
def start_proxy(tmp_path: Path, frozen_clock: FrozenClock) -> Started:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(config: QrpayConfig, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
        ctx = make_context("api-proxy", tmp_path, config=config, clock=frozen_clock, **kwargs)
        async with running_service(ctx) as (_app, client):
            yield client

    return start


@pytest.fixture
async def proxy(
    start_proxy: Started, proxy_config: QrpayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    async with start_proxy(proxy_config) as client:
        yield client


@pytest.fixture
async def guest(proxy: httpx.AsyncClient) -> httpx.AsyncClient:
    """``proxy`` with the demo guest signed in."""
    await sign_in(proxy)
    return proxy
