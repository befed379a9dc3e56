"""An eda database as revision 0004 left it (issue 18's migration test): whole-bill
payments held on ``orders.payment_id/payment_phase`` and split bills' ``order_shares``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
)

from tests.support.postgres import sync_connection

# The tables as 0004 made them, written down here: the code's own declarations moved on.
_metadata = MetaData()
ID, NAME, STATE, MONEY = String(32), String(128), String(16), String(32)
STAMP = DateTime(timezone=True)


def _table_0004(name: str, key: tuple[str, ...], **columns: Any) -> Table:
    """A table of 0004: ``columns`` by name and type, those named in ``key`` its primary key."""
    return Table(
        name,
        _metadata,
        *(Column(column, kind, primary_key=column in key) for column, kind in columns.items()),
    )


orders_0004 = _table_0004(
    "orders",
    ("id",),
    id=ID, client_id=String(64), internal_order_id=NAME, status=ID, currency=String(3),
    amount=MONEY, elements=JSON, bill_version=Integer, payment_id=NAME, payment_phase=STATE,
    version=Integer, change_tx=BigInteger, created_at=STAMP, updated_at=STAMP,
)  # fmt: skip
order_shares_0004 = _table_0004(
    "order_shares",
    ("id",),
    id=NAME, order_id=ID, amount=MONEY, tip=MONEY, items=JSON, state=STATE,
    created_at=STAMP, updated_at=STAMP,
)  # fmt: skip
order_share_items_0004 = _table_0004(
    "order_share_items", ("order_id", "item"), order_id=ID, item=Integer, share_id=NAME
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _order(
    order_id: str,
    status: str,
    lines: tuple[str, ...] = ("100.00",),
    payment_id: str | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    total = f"{sum(float(a) for a in lines):.2f}"
    return {
        "id": order_id,
        "client_id": "rest-1",
        "internal_order_id": f"iiko-{order_id}",
        "status": status,
        "currency": "RUB",
        "amount": total,
        "elements": [{"name": f"Dish {i}", "amount": a} for i, a in enumerate(lines)],
        "bill_version": 1,
        "payment_id": payment_id,
        "payment_phase": phase,
        "version": 3,
        "change_tx": 0,
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=1),
    }


def _share(
    share_id: str, order_id: str, amount: str, state: str, items: list[int], second: int
) -> dict[str, Any]:
    return {
        "id": share_id,
        "order_id": order_id,
        "amount": amount,
        "tip": "1.00" if state == "paid" else "0.00",
        "items": items,
        "state": state,
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=second),
    }


# Whole-bill payments in each phase, a paid one, an order with none; a split bill with
# shares paid (out of their start order), holding, released; one paid by shares alone.
LEGACY_ORDERS = [
    _order("o-hold", "PAYMENT_IN_PROGRESS", payment_id="legacy-hold", phase="HOLDING"),
    _order("o-clear", "PAYMENT_IN_PROGRESS", payment_id="legacy-clear", phase="CLEARING"),
    _order("o-roll", "PAYMENT_IN_PROGRESS", payment_id="legacy-roll", phase="ROLLING_BACK"),
    _order("o-paid", "PAYED", payment_id="legacy-paid"),
    _order("o-given-back", "WAITING"),  # its payment failed: the order forgot it
    _order("o-split", "WAITING", ("40.00", "35.00", "25.00")),
    _order("o-split-paid", "PAYED", ("60.00", "40.00")),
]
LEGACY_SHARES = [
    _share("s-paid-late", "o-split", "40.00", "paid", [0], second=30),
    _share("s-paid-early", "o-split", "10.00", "paid", [], second=20),
    _share("s-hold", "o-split", "25.00", "holding", [2], second=10),
    _share("s-released", "o-split", "35.00", "released", [1], second=40),
    _share("s-b", "o-split-paid", "40.00", "paid", [1], second=50),
    _share("s-a", "o-split-paid", "60.00", "paid", [0], second=5),
]
# A released share's items were deleted with its release.
LEGACY_SHARE_ITEMS = [
    {"order_id": s["order_id"], "item": i, "share_id": s["id"]}
    for s in LEGACY_SHARES
    if s["state"] != "released"
    for i in s["items"]
]


def seed_revision_0004(url: str) -> None:
    """The rows above, written into a database migrated to 0004."""
    with sync_connection(url, write=True) as connection:
        connection.execute(insert(orders_0004), LEGACY_ORDERS)
        connection.execute(insert(order_shares_0004), LEGACY_SHARES)
        connection.execute(insert(order_share_items_0004), LEGACY_SHARE_ITEMS)


# payment id -> (order, invoice, amount, tip, state, items, paid_seq) after 0005.
EXPECTED_PAYMENTS = {
    "legacy-hold": ("o-hold", "o-hold", "100.00", "0", "holding", [], None),
    "legacy-clear": ("o-clear", "o-clear", "100.00", "0", "clearing", [], None),
    "legacy-roll": ("o-roll", "o-roll", "100.00", "0", "rolling_back", [], None),
    "legacy-paid": ("o-paid", "o-paid", "100.00", "0", "paid", [], 1),
    "s-paid-late": ("o-split", "s-paid-late", "40.00", "1.00", "paid", [0], 2),
    "s-paid-early": ("o-split", "s-paid-early", "10.00", "1.00", "paid", [], 1),
    "s-hold": ("o-split", "s-hold", "25.00", "0.00", "holding", [2], None),
    "s-released": ("o-split", "s-released", "35.00", "0.00", "released", [1], None),
    "s-b": ("o-split-paid", "s-b", "40.00", "1.00", "paid", [1], 2),
    "s-a": ("o-split-paid", "s-a", "60.00", "1.00", "paid", [0], 1),
}
EXPECTED_ITEMS = {("o-split", 0, "s-paid-late"), ("o-split", 2, "s-hold")} | {
    ("o-split-paid", 1, "s-b"),
    ("o-split-paid", 0, "s-a"),
}
