"""Push to the POS: one fan-out per instance of the changes its follower reads.

The follower reads eda's feed once for the whole instance and hands every page to
the hub (``publish``). The hub keeps the last ``buffer_size`` changes in feed order
and hands each new one to the subscriptions of its restaurant, so any number of
POS connections cost eda nothing while they wait: a long-poll is answered from the
buffer, a WebSocket from its subscription's queue.

The POS's cursor is eda's own feed key, ``"<change_tx>:<order_id>"``: changes are
sent in key order, and every change of the POS's restaurants after its cursor is
sent once it is known to the instance. So a POS resumes anywhere, on any instance,
from the last cursor it got: one the buffer still covers is served from memory, an
older one is caught up from eda (``IikoService.catch_up``) before going live.

The WebSockets' heartbeats run on one timer per instance (``Heartbeats``), not one per
connection: each connection's first ping comes at its own random point of the period, so
thousands of POS that connected together (a fleet reconnecting after a restart) never
ping together, and a burst of due pings is handed out a batch per turn of the event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from qrpay.eda.schemas import OrderChange, parse_feed_cursor
from qrpay.iiko_integration.domain import pos_status
from qrpay.iiko_integration.schemas import IikoCode, PosStatus
from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.wakeup import Wakeups

Key = tuple[int, str]


def parse_key(text: str) -> Key:
    """eda's feed cursor as a comparable key; a POS's malformed cursor is a 400."""
    cursor = parse_feed_cursor(text)
    if cursor is None:
        raise InvalidInput(f"not a cursor: {text[:80]!r}", code=IikoCode.BAD_CURSOR)
    return cursor.change_tx, cursor.order_id


def key_text(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


@dataclass(frozen=True, slots=True)
class Pushed:
    """One change as the POS gets it."""

    key: Key
    order_id: str
    client_id: str
    status: PosStatus

    @property
    def cursor(self) -> str:
        return key_text(self.key)

    @staticmethod
    def of(change: OrderChange) -> Pushed:
        return Pushed(
            (change.change_tx, change.order_id),
            change.order_id,
            # One string per restaurant for the whole buffer (push.buffer_size changes), not
            # one per change: ~3 MiB of a worker at the default 50,000 (issue 22).
            sys.intern(change.client_id),
            pos_status(change, change.client_id),
        )


class Subscription:
    """One WebSocket's queue: the live changes of its restaurants after ``floor``."""

    def __init__(self, client_ids: frozenset[str], max_queued: int, floor: Key) -> None:
        self.client_ids = client_ids
        self.floor = floor
        self._max = max_queued
        self._queue: deque[Pushed] = deque()
        # Set whenever the stream has something to do: a change, a ping due, the POS gone.
        self.ready = asyncio.Event()
        # The POS fell behind by more than it may: its connection is closed, it resumes.
        self.overflowed = False
        # Set by ``Heartbeats``: the connection was quiet for a period; cleared by ``take``.
        self.ping_due = False
        # When the stream last sent a change (the heartbeats' clock); None: not yet.
        self.changed_at: float | None = None
        # Unsubscribed: the heartbeats drop it when it comes up.
        self.closed = False

    def offer(self, change: Pushed) -> None:
        if change.key <= self.floor or self.overflowed:
            return
        if len(self._queue) >= self._max:
            self.overflowed = True
            self._queue.clear()
        else:
            self._queue.append(change)
        self.ready.set()

    def take(self) -> list[Pushed]:
        """The queued changes; ``ready`` is reset with them."""
        taken = list(self._queue)
        self._queue.clear()
        self.ready.clear()
        return taken

    def take_ping(self) -> bool:
        due, self.ping_due = self.ping_due, False
        return due

    def wake(self) -> None:
        self.ready.set()


class PushHub:
    def __init__(self, buffer_size: Callable[[], int]) -> None:
        self._buffer_size = buffer_size
        self._buffer: deque[Pushed] = deque()
        # The buffer holds every change with a key in (floor, position]; None until the
        # follower's first page.
        self.floor: Key | None = None
        self.position: Key | None = None
        # The long-polls waiting, by restaurant.
        self.restaurants_changed = Wakeups()
        self._subscribers: dict[str, set[Subscription]] = {}

    def covers(self, after: Key) -> bool:
        return self.floor is not None and after >= self.floor

    def publish(self, after: str, changes: Iterable[OrderChange], cursor: str) -> None:
        """A page the follower read: the changes after ``after``, up to ``cursor``."""
        start = parse_key(after)
        if self.position != start:
            # The first page, or the follower started over: the buffer is no longer whole.
            self._buffer.clear()
            self.floor = start
        touched = set()
        for change in changes:
            pushed = Pushed.of(change)
            self._buffer.append(pushed)
            touched.add(pushed.client_id)
            for subscription in self._subscribers.get(pushed.client_id, ()):
                subscription.offer(pushed)
        self.position = parse_key(cursor)
        limit = self._buffer_size()
        while len(self._buffer) > limit:
            self.floor = self._buffer.popleft().key
        self.restaurants_changed.fire(touched)

    def since(self, after: Key, client_ids: frozenset[str], limit: int) -> list[Pushed]:
        """Up to ``limit`` buffered changes of ``client_ids`` after ``after`` (``covers`` it)."""
        found: list[Pushed] = []
        # The buffer is in key order: walk back to the first change after the cursor.
        start = len(self._buffer)
        while start > 0 and self._buffer[start - 1].key > after:
            start -= 1
        for index in range(start, len(self._buffer)):
            pushed = self._buffer[index]
            if pushed.client_id in client_ids:
                found.append(pushed)
                if len(found) >= limit:
                    break
        return found

    def subscribe(self, client_ids: frozenset[str], max_queued: int, floor: Key) -> Subscription:
        subscription = Subscription(client_ids, max_queued, floor)
        for client_id in client_ids:
            self._subscribers.setdefault(client_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        for client_id in subscription.client_ids:
            subscribers = self._subscribers.get(client_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[client_id]

    @property
    def connections(self) -> int:
        return len({id(s) for subs in self._subscribers.values() for s in subs})


# Pings handed out per turn of the event loop when more are due at once: the loop reads its
# sockets between batches, so a change is not held up behind thousands of pings.
HEARTBEAT_BATCH = 200
# A timer may fire this much before its time (libuv counts milliseconds): a ping due within
# it is sent now rather than re-arming a timer for less than a millisecond.
EARLY_S = 0.001


class Heartbeats:
    """Every WebSocket's heartbeat on one timer per instance.

    A connection is due a ping once it sent no change for a period: its first ping comes
    at a random point of the first period (never later than one period), the next a period
    after the last ping or change. The due connections are woken (``ping_due``) and ping
    for themselves, after the changes they hold, so a ping's cursor stays behind every
    change sent. ``clock`` and ``phase`` (a number in [0, 1)) are injectable for tests.
    """

    def __init__(
        self,
        period: Callable[[], float],
        *,
        clock: Callable[[], float] = time.monotonic,
        phase: Callable[[], float] = random.random,
        batch: int = HEARTBEAT_BATCH,
    ) -> None:
        self._period = period
        self.clock = clock
        self._phase = phase
        self._batch = batch
        # (due, order of scheduling, connection): one live entry per open connection;
        # a closed connection's entry is dropped when it comes up.
        self._due: list[tuple[float, int, Subscription]] = []
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._armed_for = 0.0

    def __len__(self) -> int:
        return len(self._due)

    def add(self, subscription: Subscription) -> None:
        """Start the heartbeat of an open stream (in the event loop)."""
        # 1 - phase is in (0, 1]: the first ping is never later than a period from now.
        self._schedule(self.clock() + self._period() * (1.0 - self._phase()), subscription)
        self._arm()

    def sent_change(self, subscription: Subscription) -> None:
        """The stream sent a change: its next ping is a period from now."""
        subscription.changed_at = self.clock()

    def next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def due(self) -> list[Subscription]:
        """Up to a batch of connections due a ping now, marked ``ping_due`` and scheduled
        for their next one. One that sent a change since is put back to a period after it."""
        now = self.clock()
        period = self._period()
        woken: list[Subscription] = []
        while self._due and self._due[0][0] <= now + EARLY_S and len(woken) < self._batch:
            _due, _order, subscription = heapq.heappop(self._due)
            if subscription.closed:
                continue
            changed_at = subscription.changed_at
            if changed_at is not None and changed_at + period > now + EARLY_S:
                self._schedule(changed_at + period, subscription)
                continue
            self._schedule(now + period, subscription)
            subscription.ping_due = True
            woken.append(subscription)
        return woken

    def _schedule(self, due: float, subscription: Subscription) -> None:
        heapq.heappush(self._due, (due, next(self._order), subscription))

    def _arm(self) -> None:
        """The timer set for the first due connection (earlier than it was set for)."""
        first = self.next_due()
        if first is None:
            return
        if self._timer is not None:
            if self._armed_for <= first:
                return
            self._timer.cancel()
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._armed_for = first
        self._timer = self._loop.call_later(max(0.0, first - self.clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        for subscription in self.due():
            subscription.wake()
        first = self.next_due()
        if first is not None and first <= self.clock() + EARLY_S and self._loop is not None:
            # More than a batch due: the rest on the loop's next turn, after its I/O.
            self._armed_for = first
            self._timer = self._loop.call_soon(self._fire)
        else:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
