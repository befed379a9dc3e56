"""The orders table and every query on it (SQLAlchemy Core).

Amounts are stored as canonical decimal strings, never floats: SQLite has no
exact decimal type and the wire format is a string anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql

from qrpay.eda import feed
from qrpay.eda.domain import OPEN_STATUSES, Order, ttl_cutoff
from qrpay.eda.schemas import Bill, BillElement, OrderStatus, PaymentState
from qrpay.kernel.clock import utc, wire_time
from qrpay.kernel.db import (
    Database,
    Statement,
    amount_column,
    created_updated,
    currency_column,
    new_metadata,
)
from qrpay.kernel.repository import Repository, by_dialect, from_json

metadata = new_metadata()

orders = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("internal_order_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    currency_column(),
    amount_column(),
    Column("elements", JSON, nullable=False),
    Column("bill_version", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    *created_updated(),
    # The transaction of the latest write: the change feed's order (``eda.feed``).
    Column("change_tx", BigInteger, nullable=False, server_default="0"),
    # Something was paid and all of it is refunded (``Ledger.refunded_fully``, issue 19):
    # the status stays PAYED, this tells a refund-aware reader of the statuses and the feed.
    Column("refunded_fully", Boolean, nullable=False, server_default=false()),
    # One order per POS order: the database, not the code, guarantees it.
    UniqueConstraint("client_id", "internal_order_id", name="uq_orders_client_internal"),
    Index("ix_orders_status_created_at", "status", "created_at"),
    Index("ix_orders_change_tx_id", "change_tx", "id"),
    # One restaurant's part of the feed (the POS's push).
    Index("ix_orders_client_id_change_tx", "client_id", "change_tx", "id"),
)

# An order's payments (``eda.ledger``): each a share of the bill, the whole bill being the
# share of everything left. A write of one locks its order's row first.
payments = Table(
    "payments",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("order_id", String(32), ForeignKey("orders.id"), nullable=False),
    Column("invoice_id", String(128), nullable=False),
    amount_column(),
    amount_column("tip"),
    currency_column(),
    Column("items", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("token", String(128), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("paid_seq", Integer, nullable=True),
    *created_updated(),
    # One payment per guest token on an order: the database, not the code, says so.
    UniqueConstraint("order_id", "token", name="uq_payments_order_id_token"),
    Index("ix_payments_order_id", "order_id"),
    # The sweep's work list: payments under way, oldest change first.
    Index("ix_payments_state_updated_at", "state", "updated_at", "id"),
)

# An item is reserved by at most one payment: the primary key, not the code, says so. A
# released payment's rows are deleted with its release.
payment_items = Table(
    "payment_items",
    metadata,
    Column("order_id", String(32), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("payment_id", String(128), ForeignKey("payments.id"), nullable=False),
)

# Refunds of paid payments (issue 19, ``eda.refunds``): one row per part, ``<refund_id>.<n>``,
# written under the order's row lock like the payments. The (order, refund, n) key makes a
# refund id's parts one set whoever writes them first.
refunds = Table(
    "refunds",
    metadata,
    Column("order_id", String(32), ForeignKey("orders.id"), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("refund_id", String(100), nullable=False),
    Column("n", Integer, nullable=False),
    Column("payment_id", String(128), ForeignKey("payments.id"), nullable=False),
    amount_column(),
    amount_column("tip"),
    currency_column(),
    Column("state", String(16), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    *created_updated(),
    UniqueConstraint("order_id", "refund_id", "n", name="uq_refunds_order_id_refund_id_n"),
    Index("ix_refunds_payment_id", "payment_id"),
)

# PostgreSQL's own number for the writing transaction, and the horizon below which every
# transaction has ended (``eda.feed``). xid8 goes through text: it has no cast to bigint.
_PG_XID = cast(cast(func.pg_current_xact_id(), Text), BigInteger)
# Followers of the feed LISTEN here (``OrderService.changed``). A notification is delivered
# at commit, so a woken reader finds the write; it is only a wake-up (they also re-check).
CHANGES_CHANNEL = "qrpay_orders"
# The xid taken together with a NOTIFY in one scalar subquery, so stamping a write also
# notifies, with no extra round trip. PostgreSQL runs it once per statement, and only
# when a row is written (an UPDATE that matches nothing sends nothing; an insert that meets
# an existing order notifies, a harmless wake-up); notifications of one transaction are
# folded into one.
_PG_XID_NOTIFYING = (
    select(_PG_XID)
    .select_from(select(func.pg_notify(CHANGES_CHANNEL, "")).subquery("notified"))
    .scalar_subquery()
)
# SQLite: write transactions hold the database lock from BEGIN IMMEDIATE to COMMIT, so the
# numbers taken in them commit in the order they are taken; nothing commits out of order,
# and the newest number + 1 is past every change.
_newest = orders.alias("newest")
_SQLITE_NEXT_TX = select(func.coalesce(func.max(_newest.c.change_tx), 0) + 1).scalar_subquery()
# This transaction's number for ``change_tx``: every status write stamps it.
_CHANGE_TX = by_dialect(postgresql=_PG_XID_NOTIFYING, default=_SQLITE_NEXT_TX)
_PG_HORIZON = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
# Some payment of the order holds or has paid money. Every payment write locks the order's
# row first, so under that lock this answer holds.
_PAYMENT_RESERVES = exists().where(
    payments.c.order_id == orders.c.id,
    payments.c.state != PaymentState.RELEASED.value,
)

# An order's columns, as ``_to_row`` writes them (the change feed's stamp aside), and the
# order in which the readers below find them in a row.
ORDER_COLUMNS = (
    "id",
    "client_id",
    "internal_order_id",
    "status",
    "currency",
    "amount",
    "elements",
    "bill_version",
    "version",
    "created_at",
    "updated_at",
    "refunded_fully",
)
SELECT_ORDER = select(*(orders.c[name] for name in ORDER_COLUMNS))


def _to_row(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_id": order.client_id,
        "internal_order_id": order.internal_order_id,
        "status": order.status.value,
        "currency": order.bill.currency,
        "amount": order.bill.amount,
        "elements": [{"name": e.name, "amount": e.amount} for e in order.bill.elements],
        "bill_version": order.bill_version,
        "version": order.version,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "refunded_fully": order.refunded_fully,
    }


def _elements(row: Sequence[Any]) -> list[dict[str, Any]]:
    return list(from_json(row[6]))


def to_order(row: Sequence[Any]) -> Order:
    """An order from a row's ``ORDER_COLUMNS`` (asyncpg's or SQLAlchemy's)."""
    bill = Bill(
        currency=row[4],
        amount=row[5],
        elements=[BillElement(name=e["name"], amount=e["amount"]) for e in _elements(row)],
    )
    return Order(
        id=row[0],
        client_id=row[1],
        internal_order_id=row[2],
        status=OrderStatus(row[3]),
        bill=bill,
        bill_version=row[7],
        version=row[8],
        created_at=utc(row[9]),
        updated_at=utc(row[10]),
        refunded_fully=bool(row[11]),
    )


def _order_view(row: Sequence[Any]) -> dict[str, Any]:
    """A row's ``ORDER_COLUMNS`` in the wire shape of ``OrderView``, with no model between."""
    return {
        "order_id": row[0],
        "client_id": row[1],
        "internal_order_id": row[2],
        "status": row[3],
        "bill": {"currency": row[4], "amount": row[5], "elements": _elements(row)},
        "bill_version": row[7],
        "created_at": wire_time(row[9]),
        "updated_at": wire_time(row[10]),
    }


_STATUS_COLUMNS = ("id", "client_id", "status", "version", "refunded_fully")


def _status_row(row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``_STATUS_COLUMNS`` as ``OrderStatusView``."""
    return {
        "order_id": row[0],
        "client_id": row[1],
        "status": row[2],
        "version": row[3],
        "refunded_fully": bool(row[4]),
    }


# The hot queries, each declared once (``Statement``: compiled once for asyncpg).

# A new order in one statement: its columns, then the writing transaction's number for the
# feed, stamped and notified like every other write.
INSERT_ORDER = Statement(
    postgresql.insert(orders)
    .values(
        {name: bindparam(name, type_=orders.c[name].type) for name in ORDER_COLUMNS}
        | {"change_tx": _CHANGE_TX}
    )
    .on_conflict_do_nothing(index_elements=[orders.c.client_id, orders.c.internal_order_id])
    .returning(orders.c.id)
)
_ORDER_BY_ID = SELECT_ORDER.where(orders.c.id == bindparam("order_id"))
ORDER = Statement(_ORDER_BY_ID)
# PostgreSQL: writers of one order queue here. SQLite ignores it; its write transactions
# already hold the database lock (BEGIN IMMEDIATE).
ORDER_LOCKED = Statement(_ORDER_BY_ID.with_for_update())
_STATUSES = Statement(
    select(*(orders.c[name] for name in _STATUS_COLUMNS)).where(
        by_dialect(
            postgresql=orders.c.id == any_(bindparam("order_ids", type_=ARRAY(String))),
            default=orders.c.id.in_(bindparam("order_ids", expanding=True)),
        )
    )
)


# The feed page: every follower's long-poll runs it on each wake-up, and through SQLAlchemy
# Core it took about a fifth of eda's CPU at a steady POS load (py-spy, 2026-12-01). On
# PostgreSQL the horizon is read in the same statement, so from the same snapshot; SQLite
# has none (``feed.NO_HORIZON``: nothing commits out of order there).
def _changes(*where: ColumnElement[bool]) -> Statement:
    after = tuple_(bindparam("change_tx", type_=BigInteger), bindparam("order_id", type_=String))
    horizon = by_dialect(postgresql=_PG_HORIZON, default=literal(feed.NO_HORIZON, BigInteger))
    return Statement(
        select(
            *(orders.c[name] for name in _STATUS_COLUMNS),
            orders.c.change_tx,
            horizon.label("horizon"),
        )
        .where(tuple_(orders.c.change_tx, orders.c.id) > after, *where)
        .order_by(orders.c.change_tx, orders.c.id)
        .limit(bindparam("limit"))
    )


_CHANGES = _changes()
_CHANGES_OF_CLIENT = _changes(orders.c.client_id == bindparam("client_id"))
_TAIL = Statement(select(by_dialect(postgresql=_PG_HORIZON, default=_SQLITE_NEXT_TX)))


async def insert_new_order(db: Database, order: Order) -> bool | None:
    """Insert ``order`` unless its (client_id, internal_order_id) exists, as one autocommit
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on asyncpg; True when it inserted,
    False when the order exists, None where there is no such path (SQLite).

    A new order (nearly every create) is then one statement: no BEGIN, no COMMIT, no
    statement built per call. An existing one is left to the transactional path, which
    compares and may replace its bill under the row's lock.
    """
    if not db.has_fast_reads:
        return None
    # Retried once on a connection that broke under it (``fetch_fast``): safe, since a
    # repeat of a committed insert meets the unique key and inserts nothing.
    return bool(await db.fetch(INSERT_ORDER, **_to_row(order)))


async def fetch_statuses(db: Database, order_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The POS polling path: one indexed query, plain dicts, no model per row."""
    return [_status_row(row) for row in await db.fetch(_STATUSES, order_ids=list(order_ids))]


async def fetch_changes(
    db: Database, after: feed.Cursor, limit: int, client_id: str | None = None
) -> tuple[list[dict[str, Any]], feed.Page]:
    """The feed's rows after ``after`` that may be served now, in feed order (``eda.feed``),
    only one restaurant's when ``client_id`` is given.

    One statement: the horizon comes from the same snapshot as the rows.
    """
    page_after = {"change_tx": after.change_tx, "order_id": after.order_id, "limit": limit + 1}
    if client_id is None:
        rows = await db.fetch(_CHANGES, **page_after)
    else:
        rows = await db.fetch(_CHANGES_OF_CLIENT, **page_after, client_id=client_id)
    if not rows:
        return [], feed.Page(served=0, more=False)
    tx = len(_STATUS_COLUMNS)
    page = feed.page([row[tx] for row in rows], int(rows[0][tx + 1]), limit)
    return [{**_status_row(row), "change_tx": row[tx]} for row in rows[: page.served]], page


async def fetch_tail(db: Database) -> feed.Cursor:
    """The cursor after every change that can be served now."""
    return feed.tail(int((await db.fetch(_TAIL))[0][0]))


async def fetch_order_view(db: Database, order_id: str) -> dict[str, Any] | None:
    """One order in the wire shape of ``OrderView``: every payer call reads it, often.

    Measured under the payment benchmark, building it through SQLAlchemy rows, the
    domain object and the response model kept eda's one core busy; this path asks
    asyncpg for the row (on PostgreSQL) and writes the wire dict directly.
    """
    rows = await db.fetch(ORDER, order_id=order_id)
    return _order_view(rows[0]) if rows else None


class OrderRepository(Repository):
    async def insert_if_absent(self, order: Order) -> bool:
        """Insert unless (client_id, internal_order_id) exists; True when this call inserted."""
        return bool(await self.fetch(INSERT_ORDER, **_to_row(order)))

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        rows = await self.fetch(ORDER_LOCKED if for_update else ORDER, order_id=order_id)
        return to_order(rows[0]) if rows else None

    async def get_by_internal_id(
        self, client_id: str, internal_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        statement = SELECT_ORDER.where(
            orders.c.client_id == client_id,
            orders.c.internal_order_id == internal_order_id,
        )
        if for_update:
            statement = statement.with_for_update()
        return await self.first(statement, to_order)

    async def save(self, before: Order, after: Order) -> bool:
        """Write ``after`` only if the row is still at ``before.version``; False if it did not."""
        values = _to_row(after)
        for key in ("id", "client_id", "internal_order_id", "created_at"):
            del values[key]
        values["change_tx"] = _CHANGE_TX
        statement = update(orders).where(
            orders.c.id == before.id, orders.c.version == before.version
        )
        return await self.changed_one(statement.values(values))

    async def cancel_expired(self, now: datetime, ttl_seconds: int) -> int:
        """The TTL rule of ``domain.is_expired`` as one set-based update.

        The condition on status is re-checked by the database on every row it
        changes, so an order that a concurrent start_payment moved on is skipped,
        and several instances running this at once cancel each order once.
        """
        result = await self.session.execute(
            update(orders)
            .where(
                orders.c.status == OrderStatus.WAITING.value,
                orders.c.created_at < ttl_cutoff(now, ttl_seconds),
                # An order some guest has paid part of, or is paying, stays open for the
                # waiter to close (issue 12).
                ~_PAYMENT_RESERVES,
            )
            .values(
                status=OrderStatus.CANCELED.value,
                version=orders.c.version + 1,
                updated_at=now,
                change_tx=_CHANGE_TX,
            )
        )
        return int(result.rowcount)

    async def count_open(self) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(orders)
            .where(orders.c.status.in_([s.value for s in OPEN_STATUSES]))
        )
        return int(result.scalar_one())
