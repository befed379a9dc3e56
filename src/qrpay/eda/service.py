"""eda's use cases. Each one is: load the order, let the domain decide, write if changed.

A write only lands if the order is still at the version the decision was made
on (and, on PostgreSQL, the row is locked while deciding), so two concurrent
calls can never both win; the loser re-reads and decides again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from qrpay.eda import feed
from qrpay.eda.domain import Order
from qrpay.eda.ledger import Ledger
from qrpay.eda.metrics import EdaMetrics
from qrpay.eda.payment_repository import PaymentRepository
from qrpay.eda.repository import (
    OrderRepository,
    fetch_changes,
    fetch_order_view,
    fetch_statuses,
    fetch_tail,
    insert_new_order,
)
from qrpay.eda.schemas import Bill, CreateOutcome, EdaCode, OrderStatus
from qrpay.kernel.clock import Clock
from qrpay.kernel.db import Database
from qrpay.kernel.errors import Conflict, NotFound
from qrpay.kernel.pg_listen import PgListener
from qrpay.kernel.wakeup import Wakeups

# Losing an optimistic write means someone else changed the order; after a
# re-read the decision is almost always final, so a few tries are plenty.
ATTEMPTS = 5


def _not_found(order_id: str) -> NotFound:
    return NotFound(f"order {order_id[:64]!r} not found", code=EdaCode.ORDER_NOT_FOUND)


def _busy() -> Conflict:
    return Conflict("the order is changing concurrently, try again", code=EdaCode.ORDER_BUSY)


class OrderService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: EdaMetrics,
        *,
        recheck_seconds: Callable[[], float] = lambda: 0.05,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        # Wakes the feed's long-polls when this process committed a status write, and on
        # PostgreSQL when any eda instance did (its NOTIFY, ``listener``); they also look
        # every recheck_seconds, for a lost notification and a horizon held back.
        self.changed = Wakeups()
        self.listener: PgListener | None = None
        self._recheck_seconds = recheck_seconds

    async def create(
        self, client_id: str, internal_order_id: str, bill: Bill
    ) -> tuple[Order, CreateOutcome]:
        fresh = Order.new(
            order_id=uuid4().hex,
            client_id=client_id,
            internal_order_id=internal_order_id,
            bill=bill,
            now=self.clock.now(),
        )
        fast = await insert_new_order(self.db, fresh)
        if fast:
            self.changed.fire()
            self.metrics.created.inc()
            return fresh, CreateOutcome.CREATED
        for _ in range(ATTEMPTS):
            async with self.db.write() as session:
                repo = OrderRepository(session)
                # Insert first and let the unique constraint decide: reading first would
                # let two instances both see "absent". After the one-statement insert met
                # the order, it exists (orders are never deleted): straight to reading it.
                inserted = fast is None and await repo.insert_if_absent(fresh)
                if not inserted:
                    existing = await repo.get_by_internal_id(
                        client_id, internal_order_id, for_update=True
                    )
                    if existing is None:  # pragma: no cover - orders are never deleted
                        continue
                    paid, _ = await PaymentRepository(session).of_order(existing.id)
                    changed, outcome = existing.with_bill(
                        bill, Ledger(existing.bill, paid), self.clock.now()
                    )
                    if changed is existing:
                        return existing, outcome
                    if not await repo.save(existing, changed):
                        continue
            self.changed.fire()
            if inserted:
                self.metrics.created.inc()
                return fresh, CreateOutcome.CREATED
            if changed.status == OrderStatus.PAYED:
                self.metrics.paid.inc()
            return changed, outcome
        raise _busy()

    async def get(self, order_id: str) -> Order:
        async with self.db.read() as session:
            order = await OrderRepository(session).get(order_id)
        if order is None:
            raise _not_found(order_id)
        return order

    async def get_view(self, order_id: str) -> dict[str, Any]:
        view = await fetch_order_view(self.db, order_id)
        if view is None:
            raise _not_found(order_id)
        return view

    async def statuses(self, order_ids: Sequence[str]) -> list[dict[str, str]]:
        return await fetch_statuses(self.db, order_ids)

    async def close(self, order_id: str) -> Order:
        for _ in range(ATTEMPTS):
            async with self.db.write() as session:
                repo = OrderRepository(session)
                order = await repo.get(order_id, for_update=True)
                if order is None:
                    raise _not_found(order_id)
                paid, _ = await PaymentRepository(session).of_order(order_id)
                changed = order.close(Ledger(order.bill, paid), self.clock.now())
                if changed is order:
                    return order
                saved = await repo.save(order, changed)
            if saved:
                self.changed.fire()
                return changed
        raise _busy()

    async def close_expired(self, ttl_seconds: int) -> int:
        async with self.db.write() as session:
            closed = await OrderRepository(session).cancel_expired(self.clock.now(), ttl_seconds)
        if closed:
            self.changed.fire()
            self.metrics.canceled_by_ttl.inc(closed)
        return closed

    async def changes(
        self,
        after: str | None,
        *,
        limit: int,
        wait_seconds: float,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """The feed after the cursor ``after`` (one restaurant's, with ``client_id``); with
        nothing to serve yet, waits up to ``wait_seconds`` for a change (a long-poll) and
        answers an empty page after that.

        The wait is the event loop's, not the service clock's: a frozen clock in a test
        must not hold a request forever.
        """
        cursor = feed.parse_cursor(after)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait_seconds
        while True:
            ticket = self.changed.ticket()
            rows, page = await fetch_changes(self.db, cursor, limit, client_id)
            left = give_up - loop.time()
            if rows or left <= 0:
                break
            await self.changed.wait(ticket, min(left, self._recheck_seconds()))
        last = feed.Cursor(rows[-1]["change_tx"], rows[-1]["order_id"]) if rows else cursor
        return {"changes": rows, "cursor": last.text(), "more": page.more}

    async def tail(self) -> str:
        return (await fetch_tail(self.db)).text()

    async def count_open(self) -> int:
        async with self.db.read() as session:
            return await OrderRepository(session).count_open()
