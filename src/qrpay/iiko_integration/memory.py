"""The statuses an instance keeps in memory, and the one rule that updates them. Pure.

Views come from eda's change feed and from direct reads, in any order: a feed
page read before a direct read may arrive after it. Of two views of one order
the one with the higher ``version`` is the newer (eda bumps it on every write
of the order, under the row's lock, so it never goes backwards for one order);
the status itself is no guide, since PAYMENT_IN_PROGRESS goes back to WAITING
when a payment fails. So a status in memory only ever moves forward.

Memory is bounded: past ``max_orders`` the orders least recently changed or asked
for are dropped, a sixteenth of ``max_orders`` at once (``_drop_oldest``), and are
read from eda again when asked for. An ask counts as of the next drop (or of when a
sixteenth of the bound have been asked for): asks in between are not told apart. An id eda did not know
is remembered as missing for a short while; any view of it replaces that.

What is kept of an order is only what the POS answers and the rule above need:
its restaurant, status and version, as a plain tuple of a string, a string and an
int, one tuple shared by every order in that state (issue 22). A pydantic view
per order cost ~1.3 KB and three objects the cyclic GC walks on every full
collection: at 200,000 orders a worker grew by ~250 MiB and its full collections
(100-200 CPU ms each, `make bench-memory`) stalled every request. Now an order
costs its id and its entry in a plain dict (~140-180 bytes), and nothing the GC walks
but the dict itself: a tuple of strings and ints is untracked once the GC has seen it. The
dict is plain, not an OrderedDict: an OrderedDict keeps a linked node and a slot
per entry besides, ~80 bytes an order more once new orders have churned it.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import NamedTuple, Protocol

from qrpay.eda.schemas import OrderStatus

# What ``answers`` gives for an id remembered as missing.
MISSING = None


class Versioned(Protocol):
    @property
    def version(self) -> int | None: ...


class Viewed(Versioned, Protocol):
    """Any of eda's views of an order that memory can learn (``OrderStatusView`` and its
    subclasses)."""

    @property
    def order_id(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def status(self) -> OrderStatus: ...


class Remembered(NamedTuple):
    """What memory answers of an order: made when asked, never kept (a tuple subclass
    stays tracked by the GC; what is kept is the plain tuple ``_Kept``)."""

    client_id: str
    status: OrderStatus
    version: int | None


# Kept per order: (client_id interned, status's value, version). Only strings, ints and
# None, in an exact tuple, so the GC untracks it.
_Kept = tuple[str, str, int | None]

# A restaurant's orders are in a handful of states (a status and a small version), so one
# record serves many orders and memory holds a pointer per order, not a tuple. Bounded for
# a box of many restaurants: past it sharing starts over.
SHARED_RECORDS = 10_000

_STATUSES: dict[str, OrderStatus] = {status.value: status for status in OrderStatus}


def is_newer(incoming: Versioned, known: Versioned | None) -> bool:
    """Whether ``incoming`` should replace ``known``: strictly later in the order's history."""
    return _later(incoming.version, None if known is None else known.version)


def _later(incoming: int | None, known: int | None) -> bool:
    if incoming is None:
        return False  # an eda older than the feed: no way to order it, never kept
    return known is None or incoming > known


def _remembered(kept: _Kept) -> Remembered:
    client_id, status, version = kept
    return Remembered(client_id, _STATUSES[status], version)


class StatusMemory:
    def __init__(self, max_orders: int) -> None:
        self.max_orders = max_orders
        # In the order last changed or asked for, oldest first (a dict keeps insertion order:
        # moving an order to the end is taking it out and putting it back).
        self._orders: dict[str, _Kept] = {}
        # Asked for since they were last moved to the end: moved at the next drop, or once a
        # sixteenth of the bound are waiting. Moving an order on each ask took a dict slot
        # each time (a dict reuses none until it resizes): at the POS mix's ~20,000 asks a
        # second a full memory resized every ~20 s, a stall of ~15-20 CPU ms each.
        self._asked: set[str] = set()
        # Each distinct record once, for all the orders it describes (see ``SHARED_RECORDS``).
        self._shared: dict[_Kept, _Kept] = {}
        # Id -> until when (the clock's monotonic seconds) it is answered as missing.
        self._missing: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._orders)

    def learn(self, view: Viewed) -> bool:
        """Keep ``view`` if it is newer than what is known; True when it was kept."""
        order_id = view.order_id
        kept = self._orders.get(order_id)
        if not _later(view.version, None if kept is None else kept[2]):
            return False
        record = (view.client_id, view.status.value, view.version)
        shared = self._shared.get(record)
        if shared is None:
            if len(self._shared) >= SHARED_RECORDS:
                self._shared.clear()  # only sharing starts over: what memory holds stays valid
            shared = (sys.intern(view.client_id), view.status.value, view.version)
            self._shared[shared] = shared
        if kept is not None:
            del self._orders[order_id]
        self._orders[order_id] = shared
        self._missing.pop(order_id, None)
        if len(self._orders) > self.max_orders:
            self._drop_oldest()
        return True

    def _drop_oldest(self) -> None:
        # Finding a dict's first entry skips every entry removed before it since the dict
        # last grew: dropping one order per new one would scan ever further each time. A
        # sixteenth of the bound at once makes that one scan per as many new orders.
        self._move_asked()
        keep = self.max_orders - self.max_orders // 16
        for order_id in list(islice(self._orders, len(self._orders) - keep)):
            del self._orders[order_id]

    def _move_asked(self) -> None:
        for order_id in self._asked:
            kept = self._orders.pop(order_id, None)
            if kept is not None:
                self._orders[order_id] = kept
        self._asked.clear()

    def learn_read(self, asked: Iterable[str], found: Iterable[Viewed], until: float) -> None:
        """A direct read of ``asked`` from eda: what it found, and the rest as missing."""
        seen = set()
        for view in found:
            seen.add(view.order_id)
            self.learn(view)
        for order_id in asked:
            if order_id not in seen and order_id not in self._orders:
                self._missing[order_id] = until
                self._missing.move_to_end(order_id)
        while len(self._missing) > self.max_orders:
            self._missing.popitem(last=False)

    def answers(self, order_ids: Sequence[str], now: float) -> dict[str, Remembered | None]:
        """What memory can answer of ``order_ids``: a view, or ``MISSING``; unknown ids are
        left out (they are read from eda)."""
        self._forget_expired(now)
        out: dict[str, Remembered | None] = {}
        for order_id in order_ids:
            kept = self._orders.get(order_id)
            if kept is not None:
                self._asked.add(order_id)
                out[order_id] = _remembered(kept)
            elif self._missing.get(order_id, now) > now:
                out[order_id] = MISSING
        if len(self._asked) >= max(1, self.max_orders // 16):
            self._move_asked()
        return out

    def view(self, order_id: str) -> Remembered | None:
        kept = self._orders.get(order_id)
        return None if kept is None else _remembered(kept)

    def _forget_expired(self, now: float) -> None:
        # Missing ids are kept in the order they were last read, so with one TTL the
        # expired ones are at the front; a TTL shortened by a reload may leave a few
        # behind a later one until it expires too, answered correctly all the while.
        missing = self._missing
        while missing:
            order_id, until = next(iter(missing.items()))
            if until > now:
                return
            del missing[order_id]
