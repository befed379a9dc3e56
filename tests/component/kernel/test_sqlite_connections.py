"""SQLite: many connections opened at once while another one writes (a CI flake of issue 21).

Every new connection used to switch the file to WAL, which takes the file's exclusive lock:
opened while another connection wrote, one failed with "database is locked". WAL is the
file's, so it is set only when the file is not in WAL yet.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from qrpay.kernel.db import Database


async def _round(writer: Database, readers: list[Database], value: int) -> list[int]:
    """Every reader connects and counts while ``writer`` holds a write transaction open."""
    writing, opened = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        async with writer.write() as session:
            await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": str(value)})
            writing.set()
            await opened.wait()

    async def read(database: Database) -> int:
        await writing.wait()
        async with database.read() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
        return int(count)

    async def read_all() -> list[int]:
        counts = await asyncio.gather(*(read(db) for db in readers))
        opened.set()
        return list(counts)

    counts, _ = await asyncio.gather(read_all(), write())
    return counts


@pytest.mark.asyncio
async def test_new_connections_while_another_writes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'many.db'}"
    writer = Database(url)
    async with writer.write() as session:
        await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    try:
        for value in range(5):
            readers = [Database(url) for _ in range(16)]
            try:
                counts = await _round(writer, readers, value)
            finally:
                for database in readers:
                    await database.dispose()
            # WAL: readers see the rows committed before, not the open transaction's.
            assert counts == [value] * len(readers)
    finally:
        await writer.dispose()
