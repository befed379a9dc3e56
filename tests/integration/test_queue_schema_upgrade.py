"""`qrpay db upgrade` on the queue's database: procrastinate's own migrations applied in
order and recorded, from a fresh database, from an older release of procrastinate's schema
with records, and from one an earlier qrpay created without records.

The older schemas are built from procrastinate's shipped migrations (the first one
creates its tables, each later one is a release's change), which is how procrastinate
checks its migrations against its schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.kernel.queue_schema import RECORDS, shipped_migrations, upgrade_queue_schema
from qrpay.kernel.request_context import bound_request_id
from tests.support.payments_cluster import sql

pytestmark = pytest.mark.postgres

PROCRASTINATE_3_3 = "03.03.00_01_pre_priority_lock_fetch_job.sql"
PROCRASTINATE_3_1 = "03.01.00_50_post_add_heartbeat.sql"
SPEC = TaskSpec(name="tests.upgraded", queue="tests", max_attempts=1)

# What makes two procrastinate schemas the same here: columns, functions with their
# arguments, indexes, triggers and enum values (``%%``: ``sql`` passes parameters).
SCHEMA_QUERY = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type
  FROM information_schema.columns WHERE table_name LIKE 'procrastinate%%'
UNION ALL
SELECT 'function', p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%%'
UNION ALL
SELECT 'index', indexname || ' ' || indexdef FROM pg_indexes WHERE tablename LIKE 'procrastinate%%'
UNION ALL
SELECT 'trigger', tgname FROM pg_trigger WHERE tgname LIKE 'procrastinate%%'
UNION ALL
SELECT 'enum', t.typname || '.' || e.enumlabel
  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
ORDER BY 1, 2
"""

Databases = Callable[[], AbstractAsyncContextManager[str]]


@pytest.fixture
async def fresh_schema(pg_database: Databases) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The schema a fresh database gets (procrastinate's schema.sql)."""
    async with pg_database() as url:
        upgrade = await upgrade_queue_schema(url)
        assert upgrade.created
        assert upgrade.applied == ()
        yield sql(url, SCHEMA_QUERY)


def records(url: str) -> list[tuple[Any, ...]]:
    return sql(url, f"SELECT name, how FROM {RECORDS} ORDER BY name")  # noqa: S608


async def test_a_fresh_database_gets_the_schema_with_every_migration_recorded(
    pg_database: Databases,
) -> None:
    async with pg_database() as url:
        first = await upgrade_queue_schema(url)
        assert first.created
        assert records(url) == [(name, "schema") for name in shipped_migrations()]
        again = await upgrade_queue_schema(url)
        assert (again.created, again.found, again.applied) == (False, None, ())


async def test_an_older_release_with_records_gets_the_newer_migrations_in_order_and_works(
    pg_database: Databases, fresh_schema: list[tuple[Any, ...]]
) -> None:
    async with pg_database() as url:
        older = await upgrade_queue_schema(url, until=PROCRASTINATE_3_3)
        assert older.applied[0] == "00.00.00_01_initial.sql"
        assert older.applied[-1] == PROCRASTINATE_3_3
        assert sql(url, SCHEMA_QUERY) != fresh_schema

        upgrade = await upgrade_queue_schema(url)
        newer = [name for name in shipped_migrations() if name > PROCRASTINATE_3_3]
        assert newer  # procrastinate 3.4's retry of failed jobs, at least
        assert list(upgrade.applied) == newer
        assert records(url)[-len(newer) :] == [(name, "applied") for name in newer]
        assert sql(url, SCHEMA_QUERY) == fresh_schema
        await uses_the_queue(url)


async def test_an_unrecorded_schema_an_earlier_qrpay_made_is_found_then_upgraded(
    pg_database: Databases, fresh_schema: list[tuple[Any, ...]]
) -> None:
    async with pg_database() as url:
        # procrastinate 3.1's tables as its schema.sql made them, and no records (what
        # `qrpay db upgrade` left before it applied migrations).
        await upgrade_queue_schema(url, until=PROCRASTINATE_3_1)
        sql(url, f"DELETE FROM {RECORDS} RETURNING name")  # noqa: S608

        upgrade = await upgrade_queue_schema(url)
        assert upgrade.found == PROCRASTINATE_3_1
        assert list(upgrade.applied) == [
            name for name in shipped_migrations() if name > PROCRASTINATE_3_1
        ]
        found = [name for name, how in records(url) if how == "found"]
        assert found == [name for name in shipped_migrations() if name <= PROCRASTINATE_3_1]
        assert sql(url, SCHEMA_QUERY) == fresh_schema
        await uses_the_queue(url)


async def uses_the_queue(url: str) -> None:
    """A task put under a request id runs once with it; then one failing for good is put
    back by procrastinate 3.4's ``procrastinate_retry_job_v2`` (a migration brought it)."""
    queue = TaskQueue(url)
    seen: list[tuple[dict[str, Any], str | None]] = []
    ran = asyncio.Event()

    async def handler(payload: dict[str, Any]) -> None:
        from qrpay.kernel.request_context import current_request_id

        seen.append((payload, current_request_id()))
        ran.set()
        if payload.get("fail"):
            raise RuntimeError("fails for good")

    queue.register(SPEC, handler)
    worker = asyncio.create_task(queue.run_worker([SPEC.queue], concurrency=1))
    try:
        with bound_request_id("req-upgrade"):
            assert await queue.put(SPEC, task_id="t1", payload={"n": 1})
        await asyncio.wait_for(ran.wait(), timeout=60)
        assert seen == [({"n": 1}, "req-upgrade")]

        ran.clear()
        await queue.put(SPEC, task_id="t2", payload={"n": 2, "fail": True})
        await asyncio.wait_for(ran.wait(), timeout=60)
        [(job_id,)] = await wait_for_rows(
            url, "SELECT id FROM procrastinate_jobs WHERE status = 'failed'"
        )
        runs = len(seen)
        ran.clear()
        sql(url, "SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", job_id)
        await asyncio.wait_for(ran.wait(), timeout=60)
        assert len(seen) == runs + 1
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
        await queue.close()


async def wait_for_rows(url: str, query: str, timeout: float = 60) -> list[tuple[Any, ...]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (rows := sql(url, query)):
        assert loop.time() < deadline, f"no rows for {query} after {timeout}s"
        await asyncio.sleep(0.1)
    return rows
