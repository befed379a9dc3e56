"""The payer stack as `qrpay serve` processes on PostgreSQL (tests/support/payments_cluster),
plain or with FaultProxies in front of the dependencies in PROXIED."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.faults import SelectiveFaultProxy, threaded
from tests.support.payments_cluster import (
    DATABASES,
    Cluster,
    FaultyCluster,
    cluster_serving,
    config_data,
)
from tests.support.postgres import DatabaseFactory

# The dependencies faulty_cluster puts a proxy in front of.
PROXIED = ("transactions", "cashback")

AnyCluster = TypeVar("AnyCluster", bound=Cluster)


async def _running(
    pg_database: DatabaseFactory,
    build: Callable[[AsyncExitStack, dict[str, str], str], AnyCluster],
) -> AsyncIterator[AnyCluster]:
    async with AsyncExitStack() as stack:
        databases = {name: await stack.enter_async_context(pg_database()) for name in DATABASES}
        queue_url = await stack.enter_async_context(pg_database())
        # Stopped before the databases are dropped: their sessions must be gone.
        with cluster_serving(lambda: build(stack, databases, queue_url), Cluster.serve_all) as c:
            yield c


@pytest.fixture
async def cluster(tmp_path: Path, pg_database: DatabaseFactory) -> AsyncIterator[Cluster]:
    async for instance in _running(
        pg_database, lambda _s, dbs, queue: Cluster(tmp_path, dbs, queue)
    ):
        yield instance


def running_faulty_cluster(
    tmp_path: Path,
    pg_database: DatabaseFactory,
    proxy_for: Callable[[str, str], SelectiveFaultProxy] = lambda _name, url: SelectiveFaultProxy(
        url
    ),
    configure: Callable[[dict[str, Any]], None] = lambda _config: None,
) -> AsyncIterator[FaultyCluster]:
    """The stack with a proxy (``proxy_for(name, url)``) in front of each of PROXIED."""

    def build(stack: AsyncExitStack, databases: dict[str, str], queue_url: str) -> FaultyCluster:
        instance = FaultyCluster(tmp_path, databases, queue_url)
        instance.proxies = {name: proxy_for(name, instance.url(name)) for name in PROXIED}
        config = config_data(instance.base)
        configure(config)
        for name, proxy in instance.proxies.items():
            stack.enter_context(threaded(proxy))
            config["services"][name]["base_url"] = proxy.base_url
        instance.env = instance.env_with(config, "config.yaml")
        return instance

    return _running(pg_database, build)


@pytest.fixture
async def faulty_cluster(
    tmp_path: Path, pg_database: DatabaseFactory
) -> AsyncIterator[FaultyCluster]:
    async for instance in running_faulty_cluster(tmp_path, pg_database):
        yield instance
