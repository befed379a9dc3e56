"""PostgreSQL LISTEN: a callback on every notification of a channel, from any process.

Only a wake-up, never the carrier: a notification sent while nobody listens (before
the connection is up, while it is being re-made after a server restart) is gone, so
whoever is woken also looks for itself on a timer. A (re)connect calls the callback
once too, for whatever may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from qrpay.kernel.db import libpq_url

log = structlog.get_logger("qrpay.pg_listen")


class PgListener:
    def __init__(
        self,
        url: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        retry_seconds: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self._url = libpq_url(url)
        self._channel = channel
        self._on_notify = on_notify
        self._retry_seconds = retry_seconds
        # Notifications received: how a test tells a wake-up by notify from one by timer.
        self.received = 0
        self.connected = False
        # LISTENs that took (a reconnect counts again).
        self.connections = 0

    def _notified(self, *_args: Any) -> None:
        self.received += 1
        self._on_notify()

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._url)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(self._channel, self._notified)
            self.connected = True
            self.connections += 1
            self._on_notify()
            await lost.wait()
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.close(timeout=2))

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        while True:
            try:
                await self._listen_once()
                log.info("listen_connection_lost", channel=self._channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listen_failed", channel=self._channel, error=repr(exc))
            await asyncio.sleep(self._retry_seconds())
