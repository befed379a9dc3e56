"""The queue's tables (procrastinate's), created and upgraded by ``qrpay db upgrade``.

procrastinate ships its schema (``schema.sql``, the current one) and every change since
its first release as SQL migrations (``sql/migrations/<x.y.z>_<nn>_[pre_|post_]<name>.sql``,
in order by name) and leaves it to the application to apply them and remember which were
applied. Here:

- a database without procrastinate's tables gets ``schema.sql``, and every shipped
  migration is recorded as contained in it (``how = 'schema'``);
- a database whose tables an earlier qrpay created without records (it applied
  ``schema.sql`` once and never again) is matched against what each procrastinate 3.x
  release added (``RELEASE_MARKERS``) and the migrations up to that release are recorded
  as found (``how = 'found'``);
- then every shipped migration not recorded is applied in order, each in a transaction
  with its record (``how = 'applied'``): one that fails leaves nothing of itself and is
  tried again by the next upgrade.

An upgrade holds an advisory lock for its whole run: two at once (a migration job started
twice) wait for each other. procrastinate's "pre" migrations are meant to run before the
new code is deployed and "post" ones after; this applies both, which is its "easier way,
with service interruption": stop the services and workers, upgrade, start the new version
(docs/data-lifecycle.md). The records are in ``qrpay_queue_migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql

from qrpay.kernel.db import libpq_url

RECORDS = "qrpay_queue_migrations"
# Any constant both upgrades agree on: the key of the advisory lock an upgrade holds.
LOCK_KEY = 0x71727061792D71  # "qrpay-q"

# What a procrastinate 3.x schema.sql created that the release before did not, newest first,
# with that release's last migration: a schema with the object contains every migration up
# to it. qrpay has required procrastinate 3 from its first commit.
RELEASE_MARKERS: tuple[tuple[str, str], ...] = (
    (
        "03.04.00_50_post_add_retry_failed_job_procedure.sql",
        "SELECT to_regproc('procrastinate_retry_job_v2') IS NOT NULL",
    ),
    (
        "03.02.00_50_post_batch_defer_jobs.sql",
        "SELECT to_regtype('procrastinate_job_to_defer_v1') IS NOT NULL",
    ),
    (
        "03.01.00_50_post_add_heartbeat.sql",
        "SELECT to_regclass('procrastinate_workers') IS NOT NULL",
    ),
    (
        "03.00.00_50_post_cancel_notification.sql",
        "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name ="
        " 'procrastinate_jobs' AND column_name = 'abort_requested')",
    ),
)


class QueueSchemaError(RuntimeError):
    """The queue's database holds a schema this upgrade cannot place."""


@dataclass(frozen=True)
class QueueUpgrade:
    created: bool  # the tables were made from schema.sql
    found: str | None  # the last migration an unrecorded schema was found to contain
    applied: tuple[str, ...]  # the migrations this upgrade ran, in order


def migrations_dir() -> Path:
    return Path(SchemaManager.get_migrations_path())


def shipped_migrations(directory: Path | None = None) -> list[str]:
    """procrastinate's migrations, in the order they apply (their names sort so)."""
    return sorted(path.name for path in (directory or migrations_dir()).glob("*.sql"))


async def upgrade_queue_schema(url: str, *, until: str | None = None) -> QueueUpgrade:
    """Bring the queue's database to the installed procrastinate's schema (or, for tests of
    an upgrade, only through the migration ``until``)."""
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            return await _upgrade(conn, until)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


async def _upgrade(
    conn: psycopg.AsyncConnection[tuple[object, ...]], until: str | None
) -> QueueUpgrade:
    shipped = [name for name in shipped_migrations() if until is None or name <= until]
    await conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, how text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(RECORDS))
    )
    recorded = {row[0] for row in await (await conn.execute(_select_records())).fetchall()}
    created, found = False, None
    if not recorded:
        if not await _scalar(conn, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL"):
            if until is None:
                async with conn.transaction():
                    await conn.execute(SchemaManager.get_schema())
                    await _record(conn, shipped, "schema")
                return QueueUpgrade(created=True, found=None, applied=())
            created = True  # built from the first migration on, up to ``until``
        else:
            found = await _found_release(conn)
            contained = [name for name in shipped if name <= found]
            async with conn.transaction():
                await _record(conn, contained, "found")
            recorded = set(contained)
    applied = []
    for name in (name for name in shipped if name not in recorded):
        async with conn.transaction():
            await conn.execute((migrations_dir() / name).read_text())
            await _record(conn, [name], "applied")
        applied.append(name)
    return QueueUpgrade(created=created, found=found, applied=tuple(applied))


def _select_records() -> sql.Composed:
    return sql.SQL("SELECT name FROM {}").format(sql.Identifier(RECORDS))


async def _record(
    conn: psycopg.AsyncConnection[tuple[object, ...]], names: list[str], how: str
) -> None:
    insert = sql.SQL("INSERT INTO {} (name, how) VALUES (%s, %s)").format(sql.Identifier(RECORDS))
    for name in names:
        await conn.execute(insert, (name, how))


async def _scalar(conn: psycopg.AsyncConnection[tuple[object, ...]], query: str) -> object:
    row = await (await conn.execute(query)).fetchone()
    return None if row is None else row[0]


async def _found_release(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> str:
    for last_migration, query in RELEASE_MARKERS:
        if await _scalar(conn, query):
            return last_migration
    raise QueueSchemaError(
        "procrastinate's tables are older than procrastinate 3.0 (which no qrpay created) "
        f"and have no {RECORDS} records: apply procrastinate's migrations by hand"
    )
