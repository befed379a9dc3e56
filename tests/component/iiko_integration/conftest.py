from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from qrpay.kernel.config import QrpayConfig, Secdist
from qrpay.kernel.service import ServiceContext
from tests.support.component.iiko_integration import (
    Started,
)
from tests.support.mockserver import MockServer
from tests.support.services import dev_config, make_context, point_services_at, running_service


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
