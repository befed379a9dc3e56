from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.migrations import upgrade
from tests.support.services import dev_secdist, make_context, running_service


@pytest.fixture
async def cashback_pg_url(
    pg_database: Callable[[], AbstractAsyncContextManager[str]],
) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with cashback's migrations applied."""
    async with pg_database() as url:
        await asyncio.to_thread(upgrade, "cashback", url)
        yield url


@pytest.fixture
async def instances(
    cashback_pg_url: str, tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two cashback instances on one database, as behind a load balancer."""
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(2):
            ctx = make_context(
                "cashback",
                tmp_path / str(i),
                secdist=dev_secdist(databases={"cashback": cashback_pg_url}),
                clock=frozen_clock,
            )
            _app, client = await stack.enter_async_context(running_service(ctx))
            clients.append(client)
        yield clients
