"""Fresh PostgreSQL databases for the postgres tier, and what the tests ask of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, func, select, text
from sqlalchemy import table as sql_table
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from qrpay.kernel.db import sync_url
from qrpay.kernel.migrations import upgrade
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.queue_schema import RECORDS

# ``async with pg_database() as url:`` gives a fresh, empty database.
DatabaseFactory = Callable[[], AbstractAsyncContextManager[str]]


# The params of a fixture that runs its tests on SQLite and on PostgreSQL (``either_database``).
SQLITE_AND_POSTGRES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@asynccontextmanager
async def either_database(request: pytest.FixtureRequest, sqlite_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh database of the fixture's param: SQLite in ``sqlite_path`` or, for
    ``postgres``, a fresh PostgreSQL database (``pg_database``)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{sqlite_path}"
        return
    pg_database: DatabaseFactory = request.getfixturevalue("pg_database")
    async with pg_database() as url:
        yield url


@asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """Create a uniquely named database next to ``admin_url``, yield its URL, drop it."""
    name = f"qrpay_test_{uuid4().hex}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        await admin.dispose()


async def migrate(service: str, url: str, *, durable_queue: bool = False) -> None:
    """Apply ``service``'s migrations to ``url`` and, with ``durable_queue``, the queue's schema."""
    await asyncio.to_thread(upgrade, service, url)
    if durable_queue:
        queue = TaskQueue(url)
        await queue.apply_schema()
        await queue.close()


def _not_the_queue(_object: object, name: str | None, type_: str, *_: object) -> bool:
    return not (
        type_ == "table" and name is not None and name.startswith(("procrastinate", RECORDS))
    )


@contextmanager
def sync_connection(url: str, *, write: bool = False) -> Iterator[Connection]:
    """A synchronous connection to the database at ``url`` (an async driver's URL); with
    ``write``, in a transaction committed at the end. The engine is disposed of after."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() if write else engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def metadata_diff(url: str, metadata: MetaData) -> list[object]:
    """What differs between the tables at ``url`` and ``metadata`` (the queue's tables aside)."""
    with sync_connection(url) as connection:
        context = MigrationContext.configure(connection, opts={"include_object": _not_the_queue})
        return list(compare_metadata(context, metadata))


def sqlite_migration_diff(service: str, tmp_path: Path, metadata: MetaData) -> list[object]:
    """Migrate a fresh SQLite file for ``service`` and compare it with ``metadata``."""
    path = tmp_path / f"{service}.db"
    upgrade(service, f"sqlite+aiosqlite:///{path}")
    return metadata_diff(f"sqlite+aiosqlite:///{path}", metadata)


async def row_count(url: str, table: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(select(func.count()).select_from(sql_table(table)))
            return int(result.scalar_one())
    finally:
        await engine.dispose()
