"""``qrpay db upgrade``."""

from __future__ import annotations

import asyncio

from rich.console import Console

from qrpay.cli.common import describe, migrated, safe_url, say_error, settings_with
from qrpay.kernel.queue_schema import QueueUpgrade, upgrade_queue_schema
from qrpay.runner.config import load_secdist
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
            upgrade = asyncio.run(upgrade_queue_schema(queue_url))
        except Exception as exc:
            say_error(f"the queue schema at {safe_url(queue_url)} failed: {describe(exc)}")
            return 2
        for line in queue_report(upgrade):
            console.print(f"{QUEUE}: {line}", markup=False)
        console.print(f"{QUEUE}: schema ready ({safe_url(queue_url)})", markup=False)
    return 0


def queue_report(upgrade: QueueUpgrade) -> list[str]:
    """What an upgrade of procrastinate's tables did, a line each."""
    lines = []
    if upgrade.created:
        lines.append("created procrastinate's tables")
    if upgrade.found is not None:
        lines.append(f"found procrastinate's tables up to {upgrade.found} (now recorded)")
    lines.extend(f"applied {name}" for name in upgrade.applied)
    return lines
