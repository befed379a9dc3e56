"""Sessions ended by the server (as a PostgreSQL restart ends them) cost no request an error.

The pools keep connections the server has closed: SQLAlchemy's is checked at checkout
(locally, without a round trip) and asyncpg's fast pool at acquire, so the next requests run
on new connections. Only this test's own database's sessions are ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import text

from qrpay.kernel.db import Database
from tests.support.payments_cluster import database_name, sql

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(
    pg_database: Callable[[], AbstractAsyncContextManager[str]],
) -> AsyncIterator[tuple[Database, str]]:
    async with pg_database() as url:
        db = Database(url, pool_size=4)
        try:
            yield db, url
        finally:
            await db.dispose()


def end_sessions(url: str) -> int:
    """pg_terminate_backend every session of this database but the caller's own."""
    return len(
        sql(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            database_name(url),
        )
    )


async def test_the_next_requests_after_the_server_ended_every_session_succeed(
    database: tuple[Database, str],
) -> None:
    db, url = database
    async with db.write() as connection:
        await connection.execute(text("CREATE TABLE t (n int)"))
        await connection.execute(text("INSERT INTO t VALUES (1)"))

    async def use_every_pool() -> None:
        # Several at once, so each pool holds more than one connection.
        await asyncio.gather(*(db.fetch_fast("SELECT n FROM t") for _ in range(4)))
        for _ in range(2):
            async with db.read() as connection:
                assert (await connection.execute(text("SELECT n FROM t"))).scalar_one() == 1
            async with db.write() as connection:
                await connection.execute(text("UPDATE t SET n = 1"))

    await use_every_pool()
    assert end_sessions(url) >= 2
    await asyncio.sleep(0.3)  # the clients read the servers' goodbye

    await use_every_pool()
    rows = await db.fetch_fast("SELECT n FROM t")
    assert [row["n"] for row in rows] == [1]
    await db.ping()
