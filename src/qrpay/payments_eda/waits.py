"""Guests waiting on their payment's status (the long-poll), woken by eda's change feed.

A guest's ``GET /orders?wait_ms=`` (or the share's) is answered as soon as what it
shows changes, or at ``wait_ms`` with the current status. Every payment move in eda
writes the order, so it comes through the feed: one follower per process
(``OrderFollower``) wakes the waiters of the orders on each page, and only those
read eda again. While the follower is not current (starting, eda's feed failing or
late) a waiter reads eda every ``recheck`` instead, so a lost wake costs latency,
never a wrong answer.

A waiter is registered before its first read: a change committed between that read and
the wait still wakes it. Waiting holds no in-flight slot of the instance
(``kernel.http.parked``), and at most ``max_waiting`` guests wait per instance: one more
is answered at once, to poll after ``X-Polling-Delay``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from qrpay.eda.client import EdaClient
from qrpay.eda.config import FeedConfig
from qrpay.eda.follower import FeedFollower, FeedGauges
from qrpay.eda.schemas import ChangesPage
from qrpay.kernel.clock import Clock
from qrpay.kernel.http import parked

Answer = TypeVar("Answer")


class OrderWaits:
    """Who waits on which order; ``wake`` sets their events."""

    def __init__(self, max_waiting: Callable[[], int]) -> None:
        self._max_waiting = max_waiting
        self._waiting: dict[str, set[asyncio.Event]] = {}
        # Registered waiters, and of them those past their first read (waiting for a wake).
        self.count = 0
        self.parked = 0

    def admits(self) -> bool:
        return self.count < self._max_waiting()

    @contextmanager
    def watch(self, order_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(order_id, set()).add(event)
        self.count += 1
        try:
            yield event
        finally:
            self.count -= 1
            waiters = self._waiting.get(order_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiting[order_id]

    @contextmanager
    def parking(self) -> Iterator[None]:
        self.parked += 1
        try:
            yield
        finally:
            self.parked -= 1

    def wake(self, order_ids: Iterable[str]) -> None:
        for order_id in order_ids:
            for event in self._waiting.get(order_id, ()):
                event.set()


class OrderFollower(FeedFollower):
    """payments-eda's follower of eda's feed: each change wakes its order's waiters."""

    job_name = "payments-feed-follower"

    def __init__(
        self,
        eda: EdaClient,
        clock: Clock,
        config: Callable[[], FeedConfig],
        waits: OrderWaits,
        gauges: FeedGauges | None = None,
    ) -> None:
        super().__init__(eda, clock, config, gauges)
        self.waits = waits

    def apply(self, after: str, page: ChangesPage) -> None:
        self.waits.wake(change.order_id for change in page.changes)


async def until_changed(
    waits: OrderWaits,
    order_id: str,
    read: Callable[[], Awaitable[Answer]],
    *,
    wait_seconds: float,
    settled: Callable[[Answer], bool],
    following: Callable[[], bool],
    recheck_seconds: float,
) -> Answer:
    """``read()``'s answer once it differs from the first one, or the latest at the end of
    ``wait_seconds``; at once when that is 0, when the first answer is ``settled`` (nothing
    more to wait for) or when the instance has its ``max_waiting`` guests already."""
    if wait_seconds <= 0 or not waits.admits():
        return await read()
    with waits.watch(order_id) as woken:
        first = await read()
        if settled(first):
            return first
        # The loop's own time, not the service's clock: this is how long a request is held.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        with parked(), waits.parking():
            while (left := deadline - loop.time()) > 0:
                step = left if following() else min(left, recheck_seconds)
                try:
                    await asyncio.wait_for(woken.wait(), step)
                except TimeoutError:
                    if following():
                        continue  # nothing changed: the follower would have said so
                woken.clear()
                latest = await read()
                if latest != first:
                    return latest
        return first
