"""PostgreSQL fixtures: the admin URL, fresh databases, a migrated database per service, a
private server to stop and restart, and two instances of one service on one database.

A folder whose tests need a migrated database or two instances names its service with a
``service_under_test`` fixture in its conftest.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from tests.support.postgres import DatabaseFactory, fresh_database, migrate
from tests.support.private_postgres import PostgresUnavailable, PrivatePostgres
from tests.support.services import dev_secdist, make_context, running_service


def _require_postgres(reason: str) -> None:
    """Skip for ``reason``, or fail under QRPAY_REQUIRE_POSTGRES=1 (CI), where none may skip."""
    if os.environ.get("QRPAY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"QRPAY_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> str:
    """The admin URL of a real PostgreSQL; the postgres tier is skipped without it.

    CI sets QRPAY_TEST_POSTGRES_URL and QRPAY_REQUIRE_POSTGRES=1, so there these
    tests cannot silently skip.
    """
    url = os.environ.get("QRPAY_TEST_POSTGRES_URL")
    if not url:
        _require_postgres("QRPAY_TEST_POSTGRES_URL is not set")
    assert url is not None
    return url


@pytest.fixture
def pg_database(postgres_url: str) -> DatabaseFactory:
    """``async with pg_database() as url:`` gives a fresh, empty database."""
    return lambda: fresh_database(postgres_url)


@pytest.fixture
async def pg_queue(pg_database: DatabaseFactory) -> AsyncIterator[TaskQueue]:
    """A durable queue on a fresh database with procrastinate's schema."""
    async with pg_database() as url:
        queue = TaskQueue(url)
        await queue.apply_schema()
        try:
            yield queue
        finally:
            await queue.close()


@dataclass(frozen=True)
class ServiceUnderTest:
    """The service a folder's postgres tests run; ``durable_queue`` adds the queue's schema."""

    name: str
    durable_queue: bool = False


@pytest.fixture
async def migrated_pg_url(
    pg_database: DatabaseFactory, service_under_test: ServiceUnderTest
) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with the service's migrations applied."""
    async with pg_database() as url:
        await migrate(service_under_test.name, url, durable_queue=service_under_test.durable_queue)
        yield url


@pytest.fixture
async def running_instances(
    migrated_pg_url: str,
    service_under_test: ServiceUnderTest,
    tmp_path: Path,
    frozen_clock: FrozenClock,
) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    """Two instances of the service on one database (and one durable queue), as behind a
    load balancer."""
    name = service_under_test.name
    async with AsyncExitStack() as stack:
        running = []
        for i in range(2):
            queue = None
            if service_under_test.durable_queue:
                queue = TaskQueue(migrated_pg_url)
                stack.push_async_callback(queue.close)
            ctx = make_context(
                name,
                tmp_path / str(i),
                secdist=dev_secdist(databases={name: migrated_pg_url}),
                clock=frozen_clock,
                queue=queue,
            )
            running.append(await stack.enter_async_context(running_service(ctx)))
        yield running


@pytest.fixture
def instances(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]],
) -> list[httpx.AsyncClient]:
    """The clients of ``running_instances``."""
    return [client for _app, client in running_instances]


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
        _require_postgres(str(exc))
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
