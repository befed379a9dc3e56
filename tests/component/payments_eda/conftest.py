from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import service_of
from qrpay.payments_eda.service import PaymentsService
from qrpay.payments_eda.tasks import Handlers
from tests.support.component.payments_eda import (
    Env,
    config_for,
)
from tests.support.mockserver import MockServer
from tests.support.services import (
    make_context,
    running_service,
)


@pytest.fixture
def pe_factory(tmp_path: Path, mockserver: MockServer) -> Callable[..., Any]:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(queue_workers: bool = False, **config: Any) -> AsyncIterator[Env]:
        queue = TaskQueue()
        ctx = make_context(
            "payments-eda",
            tmp_path,
            config=config_for(mockserver, **config),
            queue=queue,
            queue_workers=queue_workers,
        )
        async with running_service(ctx) as (app, client):
            service = service_of(app, PaymentsService)
            yield Env(ctx, client, service, Handlers(service), queue, mockserver)
        await queue.close()

    return start


@pytest.fixture
async def pe(pe_factory: Callable[..., Any]) -> AsyncIterator[Env]:
    async with pe_factory() as env:
        yield env
