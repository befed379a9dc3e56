from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import pytest

from tests.integration.payments.cluster import DATABASES, Cluster, serve_on_free_ports


@pytest.fixture
async def cluster(
    tmp_path: Path, pg_database: Callable[[], AbstractAsyncContextManager[str]]
) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        databases = {name: await stack.enter_async_context(pg_database()) for name in DATABASES}
        queue_url = await stack.enter_async_context(pg_database())

        def build(attempt: int) -> Cluster:
            instance = Cluster(tmp_path, databases, queue_url)
            if attempt == 0:
                instance.upgrade()
            return instance

        instance = serve_on_free_ports(build, Cluster.serve_all)
        try:
            instance.bind_card()
            yield instance
        finally:
            # Before the databases are dropped: their sessions must be gone.
            instance.stop()
