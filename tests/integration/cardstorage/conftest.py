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
async def cardstorage_pg_url(
    pg_database: Callable[[], AbstractAsyncContextManager[str]],
) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with cardstorage's migrations applied."""
    async with pg_database() as url:
        await asyncio.to_thread(upgrade, "cardstorage", url)
        yield url


@pytest.fixture
async def instances(
    cardstorage_pg_url: str, tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two cardstorage instances on one database, as behind a load balancer."""
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(2):
            ctx = make_context(
                "cardstorage",
                tmp_path / str(i),
                secdist=dev_secdist(databases={"cardstorage": cardstorage_pg_url}),
                clock=frozen_clock,
            )
            _app, client = await stack.enter_async_context(running_service(ctx))
            clients.append(client)
        yield clients
