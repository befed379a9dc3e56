from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.migrations import upgrade
from qrpay.kernel.queue import TaskQueue
from tests.support.services import dev_secdist, make_context, running_service


@pytest.fixture
async def tx_pg_url(
    pg_database: Callable[[], AbstractAsyncContextManager[str]],
) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with transactions' migrations and the queue's schema."""
    async with pg_database() as url:
        await asyncio.to_thread(upgrade, "transactions", url)
        queue = TaskQueue(url)
        await queue.apply_schema()
        await queue.close()
        yield url


@pytest.fixture
async def instances(
    tx_pg_url: str, tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    """Two transactions instances on one database and one durable queue."""
    async with AsyncExitStack() as stack:
        running = []
        for i in range(2):
            queue = TaskQueue(tx_pg_url)
            stack.push_async_callback(queue.close)
            ctx = make_context(
                "transactions",
                tmp_path / str(i),
                secdist=dev_secdist(databases={"transactions": tx_pg_url}),
                clock=frozen_clock,
                queue=queue,
                background_jobs=False,
            )
            running.append(await stack.enter_async_context(running_service(ctx)))
        yield running
