"""The payer stack of tests/integration/payments with FaultProxies in front of dependencies.

Each proxy runs its own event loop in a thread, so the tests' synchronous HTTP helpers
(``Cluster.order_status`` and friends) never stall it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.conftest import fresh_database
from tests.integration.payments.cluster import (
    DATABASES,
    Cluster,
    config_data,
    serve_on_free_ports,
)
from tests.support.faults import FaultProxy
from tests.support.private_postgres import PostgresUnavailable, PrivatePostgres

# The dependencies the tests put a proxy in front of.
PROXIED = ("transactions", "cashback")


class SelectiveFaultProxy(FaultProxy):
    """A FaultProxy whose fault applies only to requests ``applies`` picks; others pass."""

    def __init__(self, target: str, applies: Callable[[web.Request], bool] | None = None) -> None:
        super().__init__(target)
        self.applies = applies

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.applies is None or self.applies(request):
            return await super()._handle(request)
        self.received += 1
        status, headers, body = await self._forward(request)
        return web.Response(body=body, status=status, headers=headers)


def is_operation_start(request: web.Request) -> bool:
    """transactions' start_operation: POST /v1/invoices/{id}/operations (a hold or a clear)."""
    return request.method == "POST" and request.path.endswith("/operations")


@contextmanager
def threaded(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Serve ``proxy`` on an event loop of its own in a daemon thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=10)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class FaultyCluster(Cluster):
    """A Cluster whose every process reaches PROXIED services through a FaultProxy."""

    proxies: dict[str, SelectiveFaultProxy]


@pytest.fixture
def pg_database(postgres_url: str) -> Callable[[], AbstractAsyncContextManager[str]]:
    """``async with pg_database() as url:`` gives a fresh, empty database."""
    return lambda: fresh_database(postgres_url)


@pytest.fixture
async def faulty_cluster(
    tmp_path: Path, pg_database: Callable[[], AbstractAsyncContextManager[str]]
) -> AsyncIterator[FaultyCluster]:
    async with AsyncExitStack() as stack:
        databases = {name: await stack.enter_async_context(pg_database()) for name in DATABASES}
        queue_url = await stack.enter_async_context(pg_database())

        def build(attempt: int) -> FaultyCluster:
            instance = FaultyCluster(tmp_path, databases, queue_url)
            proxies = {name: SelectiveFaultProxy(instance.url(name)) for name in PROXIED}
            for proxy in proxies.values():
                stack.enter_context(threaded(proxy))
            instance.proxies = proxies
            config = config_data(instance.base)
            for name, proxy in proxies.items():
                config["services"][name]["base_url"] = proxy.base_url
            instance.env = instance.env_with(config, "config.yaml")
            if attempt == 0:
                instance.upgrade()
            return instance

        instance = serve_on_free_ports(build, FaultyCluster.serve_all)
        try:
            instance.bind_card()
            yield instance
        finally:
            # Before the databases are dropped: their sessions must be gone.
            instance.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running PostgreSQL of this test's own, free to stop and restart; removed after.

    Never the machine's shared server: a test that takes the database away takes it from
    itself only. Skipped where no PostgreSQL server binaries are installed (failed under
    QRPAY_REQUIRE_POSTGRES=1, as in CI).
    """
    try:
        server = PrivatePostgres()
    except PostgresUnavailable as exc:
        if os.environ.get("QRPAY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"QRPAY_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(str(exc))
    try:
        try:
            server.start()
        except RuntimeError:
            # Another process took the probed port before the server bound it: once more.
            server.remove()
            server = PrivatePostgres()
            server.start()
        yield server
    finally:
        server.remove()
