"""The relay: processes pending operations, releases expired holds, delivers callbacks.

Safe to run on every instance at once: operations are claimed with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), auto-releases are decided under the
invoice's lock with a deterministic operation id, and callback tasks carry a
task id that the queue de-duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from qrpay.transactions.config import TransactionsConfig
from qrpay.transactions.service import TransactionsService

log = structlog.get_logger("qrpay.transactions.jobs")


async def run_relay_loop(
    service: TransactionsService, config: Callable[[], TransactionsConfig]
) -> None:
    # The config is read on every round so a reload changes the interval and the TTL.
    while True:
        try:
            await service.relay_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A database or queue that is down for a while must not stop the relay for good.
            log.warning("relay_failed", error=repr(exc))
        await asyncio.sleep(config().relay_interval_seconds)
