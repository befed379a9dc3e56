"""Retention of closed orders' bulky data on PostgreSQL: the bill lines of an order closed
longer ago than ``retention.closed_orders_days`` are collapsed into one line of its total;
everything else of the order (its money record) stays, and the POS's feed sees no change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from qrpay.eda.repository import OrderRepository, orders
from qrpay.eda.retention import COLLAPSED_LINE, apply_retention
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.db import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LINES = [{"name": "Soup", "amount": "400.00"}, {"name": "Tea", "amount": "600.00"}]


def order_row(order_id: str, status: str, closed_days_ago: float) -> dict[str, Any]:
    at = NOW - timedelta(days=closed_days_ago)
    return {
        "id": order_id,
        "client_id": "rest-1",
        "internal_order_id": f"pos-{order_id}",
        "status": status,
        "currency": "RUB",
        "amount": "1000.00",
        "elements": LINES,
        "bill_version": 1,
        "version": 3,
        "created_at": at - timedelta(hours=1),
        "updated_at": at,
        "change_tx": 77,
    }


async def test_bills_of_orders_closed_long_ago_are_collapsed_and_nothing_else(
    migrated_pg_url: str,
) -> None:
    db = Database(migrated_pg_url)
    config = RetentionConfig(closed_orders_days=90)
    try:
        async with db.write() as connection:
            await connection.execute(
                insert(orders),
                [
                    order_row("paid-old", "PAYED", 100),
                    order_row("canceled-old", "CANCELED", 91),
                    order_row("closed-old", "CLOSED", 365),
                    order_row("paid-recent", "PAYED", 89),
                    order_row("waiting-old", "WAITING", 100),
                    order_row("in-progress-old", "PAYMENT_IN_PROGRESS", 100),
                ],
            )
            before = {row.id: row for row in (await connection.execute(select(orders))).all()}

        assert await apply_retention(db, FrozenClock(NOW), config) == 3
        assert await apply_retention(db, FrozenClock(NOW), config) == 0  # done once

        async with db.read() as connection:
            after = {row.id: row for row in (await connection.execute(select(orders))).all()}
            paid = await OrderRepository(connection).get("paid-old")
        collapsed = {"paid-old", "canceled-old", "closed-old"}
        for order_id, row in after.items():
            expected = dict(before[order_id]._mapping)
            if order_id in collapsed:
                expected["elements"] = [{"name": COLLAPSED_LINE, "amount": "1000.00"}]
            assert dict(row._mapping) == expected, order_id
        # The collapsed order still reads as an order: one line of its total.
        assert paid is not None
        assert paid.status.value == "PAYED"
        assert [(e.name, e.amount) for e in paid.bill.elements] == [(COLLAPSED_LINE, "1000.00")]
    finally:
        await db.dispose()
