from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import pytest

from tests.integration.payments.cluster import DATABASES, Cluster, PortTaken


@pytest.fixture
async def cluster(
    tmp_path: Path, pg_database: Callable[[], AbstractAsyncContextManager[str]]
) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        databases = {name: await stack.enter_async_context(pg_database()) for name in DATABASES}
        queue_url = await stack.enter_async_context(pg_database())
        instance = Cluster(tmp_path, databases, queue_url)
        try:
            instance.upgrade()
            for attempt in range(3):
                try:
                    instance.serve_all()
                    break
                except PortTaken:
                    # Tests running in parallel can take a probed port before we bind it.
                    instance.stop()
                    if attempt == 2:
                        raise
                    instance = Cluster(tmp_path, databases, queue_url)
            instance.bind_card()
            yield instance
        finally:
            # Before the databases are dropped: their sessions must be gone.
            instance.stop()
