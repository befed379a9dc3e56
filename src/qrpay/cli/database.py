"""``qrpay db upgrade``."""

from __future__ import annotations

import asyncio

from rich.console import Console

from qrpay.cli.common import describe, migrated, safe_url, say_error, settings_with
from qrpay.kernel.config import load_secdist
from qrpay.kernel.queue import TaskQueue
from qrpay.runner.context import has_database, services_with_database

# The name that stands for procrastinate's tables in secdist ``queue_database``.
QUEUE = "queue"


def run_upgrade(names: list[str], *, console: Console) -> int:
    settings = settings_with()
    try:
        secdist = load_secdist(settings.secdist)
    except Exception as exc:
        say_error(f"cannot read secdist {settings.secdist}: {describe(exc)}")
        return 2
    queue_url = secdist.queue_database
    with_queue = QUEUE in names if names else queue_url is not None
    if with_queue and queue_url is None:
        say_error(f"no queue_database in {settings.secdist}: nothing to set up for the queue")
        return 2
    targets = [name for name in names if name != QUEUE] if names else services_with_database()
    unknown = [name for name in targets if not has_database(name)]
    if unknown:
        say_error(
            f"no database for {', '.join(unknown)}; "
            f"services with one: {', '.join(services_with_database()) or 'none yet'} "
            f"(and {QUEUE!r}, the task queue)"
        )
        return 2
    for name in targets:
        url = settings.database_url(name, secdist.databases)
        if not migrated(name, url):
            return 2
        console.print(f"{name}: at head ({safe_url(url)})", markup=False)
    if with_queue and queue_url is not None:
        try:
            asyncio.run(apply_queue_schema(queue_url))
        except Exception as exc:
            say_error(f"the queue schema at {safe_url(queue_url)} failed: {describe(exc)}")
            return 2
        console.print(f"{QUEUE}: schema ready ({safe_url(queue_url)})", markup=False)
    return 0


async def apply_queue_schema(url: str) -> None:
    queue = TaskQueue(url)
    try:
        await queue.apply_schema()
    finally:
        await queue.close()
