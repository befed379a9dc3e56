"""Retention of closed orders' bulky data.

An order's bill lines (a name and an amount per item, up to 500 of them) are what the
guest sees while paying. Some time after the order closed (PAYED, CANCELED or CLOSED;
``retention.closed_orders_days``) they are collapsed into one line of the bill's total:
the order keeps its id, restaurant, POS id, amount, currency, status and times; its
payments (the money records, with the items they paid by position) are not touched. The
rows are written without a new ``change_tx``: a collapse is no change the POS must see.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import Text, cast, select, update

from qrpay.eda.repository import orders
from qrpay.eda.schemas import OrderStatus
from qrpay.kernel.clock import Clock
from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.db import Database

log = structlog.get_logger("qrpay.eda.retention")

# The one line a collapsed bill keeps; its text marks the order as done.
COLLAPSED_LINE = "(bill lines removed by retention)"
CLOSED = (OrderStatus.PAYED.value, OrderStatus.CANCELED.value, OrderStatus.CLOSED.value)
BATCH = 500


async def collapse_closed_bills(
    db: Database, closed_before: datetime, *, batch: int = BATCH
) -> int:
    """Collapse the bill lines of the orders closed before ``closed_before``; returns how
    many were collapsed. Safe on several instances at once (each row once, the same way)."""
    due = (
        orders.c.status.in_(CLOSED),
        orders.c.updated_at < closed_before,
        cast(orders.c.elements, Text).not_like(f"%{COLLAPSED_LINE}%"),
    )
    collapsed = 0
    while True:
        async with db.write() as connection:
            rows = (
                await connection.execute(
                    select(orders.c.id, orders.c.amount).where(*due).limit(batch)
                )
            ).all()
            for order_id, amount in rows:
                await connection.execute(
                    update(orders)
                    .where(orders.c.id == order_id, *due)
                    .values(elements=[{"name": COLLAPSED_LINE, "amount": amount}])
                )
        collapsed += len(rows)
        if len(rows) < batch:
            return collapsed


async def apply_retention(db: Database, clock: Clock, config: RetentionConfig) -> int:
    closed_before = clock.now() - timedelta(days=config.closed_orders_days)
    collapsed = await collapse_closed_bills(db, closed_before)
    if collapsed:
        log.info("closed_bills_collapsed", count=collapsed, closed_before=closed_before.isoformat())
    return collapsed
