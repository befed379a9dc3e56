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
"""

from __future__ import annotations

import asyncio
import sys
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
        self.ready = asyncio.Event()
        # The POS fell behind by more than it may: its connection is closed, it resumes.
        self.overflowed = False

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
        taken = list(self._queue)
        self._queue.clear()
        self.ready.clear()
        return taken


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
        for client_id in subscription.client_ids:
            subscribers = self._subscribers.get(client_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[client_id]

    @property
    def connections(self) -> int:
        return len({id(s) for subs in self._subscribers.values() for s in subs})
