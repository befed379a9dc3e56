"""The statuses an instance keeps in memory, and the one rule that updates them. Pure.

Views come from eda's change feed and from direct reads, in any order: a feed
page read before a direct read may arrive after it. Of two views of one order
the one with the higher ``version`` is the newer (eda bumps it on every write
of the order, under the row's lock, so it never goes backwards for one order);
the status itself is no guide, since PAYMENT_IN_PROGRESS goes back to WAITING
when a payment fails. So a status in memory only ever moves forward.

Memory is bounded: past ``max_orders`` the order least recently changed or asked
for is dropped, and is read from eda again when asked for. An id eda did not know
is remembered as missing for a short while; any view of it replaces that.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from qrpay.eda.schemas import OrderStatusView

# What ``answers`` gives for an id remembered as missing.
MISSING = None


def is_newer(incoming: OrderStatusView, known: OrderStatusView | None) -> bool:
    """Whether ``incoming`` should replace ``known``: strictly later in the order's history."""
    if incoming.version is None:
        return False  # an eda older than the feed: no way to order it, never kept
    return known is None or known.version is None or incoming.version > known.version


class StatusMemory:
    def __init__(self, max_orders: int) -> None:
        self.max_orders = max_orders
        self._orders: OrderedDict[str, OrderStatusView] = OrderedDict()
        # Id -> until when (the clock's monotonic seconds) it is answered as missing.
        self._missing: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._orders)

    def learn(self, view: OrderStatusView) -> bool:
        """Keep ``view`` if it is newer than what is known; True when it was kept."""
        known = self._orders.get(view.order_id)
        if not is_newer(view, known):
            return False
        self._orders[view.order_id] = view
        self._orders.move_to_end(view.order_id)
        self._missing.pop(view.order_id, None)
        while len(self._orders) > self.max_orders:
            self._orders.popitem(last=False)
        return True

    def learn_read(
        self, asked: Iterable[str], found: Iterable[OrderStatusView], until: float
    ) -> None:
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

    def answers(self, order_ids: Sequence[str], now: float) -> dict[str, OrderStatusView | None]:
        """What memory can answer of ``order_ids``: a view, or ``MISSING``; unknown ids are
        left out (they are read from eda)."""
        out: dict[str, OrderStatusView | None] = {}
        for order_id in order_ids:
            view = self._orders.get(order_id)
            if view is not None:
                self._orders.move_to_end(order_id)
                out[order_id] = view
            elif self._missing.get(order_id, now) > now:
                out[order_id] = MISSING
        return out

    def view(self, order_id: str) -> OrderStatusView | None:
        return self._orders.get(order_id)
