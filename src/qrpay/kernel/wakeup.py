"""Waking waiters (long-polls) when something happened to a key. Only a hint: a waiter
that is not woken still answers at its deadline, and looks again for itself."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable


class Wakeups:
    def __init__(self) -> None:
        self._events: dict[Hashable, asyncio.Event] = {}

    def ticket(self, key: Hashable = None) -> asyncio.Event:
        """What ``wait`` waits on, taken *before* looking: a wake between the look and the
        wait is not lost."""
        return self._events.setdefault(key, asyncio.Event())

    def has_waiters(self, key: Hashable = None) -> bool:
        return key in self._events

    def fire(self, keys: Iterable[Hashable] = (None,)) -> None:
        # Everyone holding a ticket for these keys wakes; later waiters get fresh ones.
        for key in keys:
            event = self._events.pop(key, None)
            if event is not None:
                event.set()

    @staticmethod
    async def wait(ticket: asyncio.Event, seconds: float) -> bool:
        """True when woken, False after ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await ticket.wait()
        except TimeoutError:
            return False
        return True
