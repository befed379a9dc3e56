from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.config import Secdist
from qrpay.kernel.service import ServiceContext, service_of
from qrpay.runner.config import QrpayConfig
from tests.support.component.iiko_integration import Following, MockedFeed, Started
from tests.support.mockserver import MockServer
from tests.support.services import dev_config, make_context, point_services_at, running_service
from tests.support.waiting import eventually


@pytest.fixture
def iiko_context(tmp_path: Path, mockserver: MockServer) -> Callable[..., ServiceContext]:
    def build(
        config: QrpayConfig | None = None, *, secdist: Secdist | None = None, **eda: Any
    ) -> ServiceContext:
        base = config or dev_config()
        pointed = point_services_at(base, eda.pop("base_url", mockserver.base_url), "eda", **eda)
        return make_context("iiko-integration", tmp_path, config=pointed, secdist=secdist)

    return build


@pytest.fixture
async def iiko(iiko_context: Callable[..., ServiceContext]) -> AsyncIterator[Started]:
    ctx = iiko_context()
    async with running_service(ctx) as (_app, client):
        yield ctx, client


@pytest.fixture
def feed(mockserver: MockServer) -> MockedFeed:
    return MockedFeed(mockserver)


@pytest.fixture
def start_following(
    iiko_context: Callable[..., ServiceContext], feed: MockedFeed
) -> Callable[..., AbstractAsyncContextManager[Following]]:
    """An instance whose follower runs against ``feed``, once it is current; ``feed`` config
    fields as keyword arguments."""

    @asynccontextmanager
    async def start(**feed_config: Any) -> AsyncIterator[Following]:
        ctx = iiko_context(dev_config(feed={"wait_ms": 20, "retry_ms": 10, **feed_config}))
        ctx.run_background_jobs = True
        async with running_service(ctx) as (app, client):
            service = service_of(app, IikoService)
            await eventually(service.follower.is_fresh)
            assert service.follower.is_fresh()
            yield ctx, client, service

    return start
