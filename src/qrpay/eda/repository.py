"""The orders table and every query on it (SQLAlchemy Core).

Amounts are stored as canonical decimal strings, never floats: SQLite has no
exact decimal type and the wire format is a string anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    cast,
    exists,
    false,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Row

from qrpay.eda import feed
from qrpay.eda.domain import OPEN_STATUSES, Order, ttl_cutoff
from qrpay.eda.schemas import Bill, BillElement, OrderStatus, PaymentState
from qrpay.kernel.clock import utc, wire_time
from qrpay.kernel.db import Database, new_metadata
from qrpay.kernel.repository import Repository, fast_select

metadata = new_metadata()

orders = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("internal_order_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", String(32), nullable=False),
    Column("elements", JSON, nullable=False),
    Column("bill_version", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
    Column("amount", String(32), nullable=False),
    Column("tip", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("items", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("token", String(128), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("paid_seq", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
    Column("amount", String(32), nullable=False),
    Column("tip", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
# when a row is written (an UPDATE that matches nothing sends nothing); notifications
# of one transaction are folded into one.
_PG_XID_NOTIFYING = (
    select(_PG_XID)
    .select_from(select(func.pg_notify(CHANGES_CHANNEL, "")).subquery("notified"))
    .scalar_subquery()
)
# Some payment of the order holds or has paid money. Every payment write locks the order's
# row first, so under that lock this answer holds.
_PAYMENT_RESERVES = exists().where(
    payments.c.order_id == orders.c.id,
    payments.c.state != PaymentState.RELEASED.value,
)
_PG_HORIZON = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)


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


def _to_order(row: Row[Any]) -> Order:
    m = row._mapping
    bill = Bill(
        currency=m["currency"],
        amount=m["amount"],
        elements=[BillElement(name=e["name"], amount=e["amount"]) for e in m["elements"]],
    )
    return Order(
        id=m["id"],
        client_id=m["client_id"],
        internal_order_id=m["internal_order_id"],
        status=OrderStatus(m["status"]),
        bill=bill,
        bill_version=m["bill_version"],
        version=m["version"],
        created_at=utc(m["created_at"]),
        updated_at=utc(m["updated_at"]),
        refunded_fully=bool(m["refunded_fully"]),
    )


# The asyncpg fast path's statements, named from the one declaration of the table above.
_STATUS_COLUMNS = ("id", "client_id", "status", "version", "refunded_fully")
_STATUSES_SQL = fast_select(
    orders,
    _STATUS_COLUMNS,
    f"{orders.c.id.name} = ANY($1::varchar[])",
)


def _status_row(row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``_STATUS_COLUMNS`` as ``OrderStatusView``."""
    return {
        "order_id": row[0],
        "client_id": row[1],
        "status": row[2],
        "version": row[3],
        "refunded_fully": bool(row[4]),
    }


# An order's columns, as ``_to_row`` writes them (the change feed's stamp aside).
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
# A new order in one statement: its columns, then the writing transaction's number for the
# feed. Names from the declared table: no outside input.
_INSERT_SQL = (
    f"INSERT INTO {orders.name} "  # noqa: S608
    f"({', '.join(orders.c[name].name for name in ORDER_COLUMNS)}, {orders.c.change_tx.name}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(ORDER_COLUMNS) + 1))}, "
    # Stamped and notified like every other write (``_PG_XID_NOTIFYING``); a conflict
    # notifies too, a harmless wake-up.
    "(SELECT pg_current_xact_id()::text::bigint "
    f"FROM (SELECT pg_notify('{CHANGES_CHANNEL}', '')) AS notified)) "
    f"ON CONFLICT ({orders.c.client_id.name}, {orders.c.internal_order_id.name}) DO NOTHING "
    f"RETURNING {orders.c.id.name}"
)


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
    row = _to_row(order)
    row["elements"] = orjson.dumps(row["elements"]).decode()
    # Retried once on a connection that broke under it (``fetch_fast``): safe, since a
    # repeat of a committed insert meets the unique key and inserts nothing.
    inserted = await db.fetch_fast(_INSERT_SQL, *(row[name] for name in ORDER_COLUMNS))
    return bool(inserted)


async def fetch_statuses(db: Database, order_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The POS polling path: one indexed query, plain dicts, no model per row."""
    if db.has_fast_reads:
        rows = await db.fetch_fast(_STATUSES_SQL, list(order_ids))
        return [_status_row(row) for row in rows]
    async with db.read() as connection:
        result = await connection.execute(
            select(*(orders.c[name] for name in _STATUS_COLUMNS)).where(orders.c.id.in_(order_ids))
        )
        return [_status_row(row) for row in result]


# The feed page on asyncpg: every follower's long-poll runs it on each wake-up, and
# through SQLAlchemy Core it took about a fifth of eda's CPU at a steady POS load (py-spy,
# 2026-12-01). The horizon is read in the same statement, so from the same snapshot.
def _changes_sql(restaurant: str) -> str:
    # Names from the declared table; the restaurant condition is code's: no outside input.
    tx, order_id = orders.c.change_tx.name, orders.c.id.name
    columns = ", ".join(orders.c[name].name for name in _STATUS_COLUMNS)
    return (
        f"SELECT {columns}, {tx}, pg_snapshot_xmin(pg_current_snapshot())::text::bigint "  # noqa: S608
        f"FROM {orders.name} WHERE ({tx}, {order_id}) > ($1, $2){restaurant} "
        f"ORDER BY {tx}, {order_id} LIMIT $3"
    )


_CHANGES_PAGE_SQL = _changes_sql("")
_CHANGES_CLIENT_PAGE_SQL = _changes_sql(f" AND {orders.c.client_id.name} = $4")


async def fetch_changes(
    db: Database, after: feed.Cursor, limit: int, client_id: str | None = None
) -> tuple[list[dict[str, Any]], feed.Page]:
    """The feed's rows after ``after`` that may be served now, in feed order (``eda.feed``),
    only one restaurant's when ``client_id`` is given.

    One statement: the horizon comes from the same snapshot as the rows.
    """
    if db.has_fast_reads:
        args: tuple[Any, ...] = (after.change_tx, after.order_id, limit + 1)
        if client_id is None:
            rows = await db.fetch_fast(_CHANGES_PAGE_SQL, *args)
        else:
            rows = await db.fetch_fast(_CHANGES_CLIENT_PAGE_SQL, *args, client_id)
        return _changes_page(rows, limit)
    # SQLite (no fast reads): nothing commits out of order there (``feed.NO_HORIZON``).
    statement = (
        select(
            *(orders.c[name] for name in _STATUS_COLUMNS),
            orders.c.change_tx,
            literal(feed.NO_HORIZON, BigInteger).label("horizon"),
        )
        .where(tuple_(orders.c.change_tx, orders.c.id) > tuple_(after.change_tx, after.order_id))
        .order_by(orders.c.change_tx, orders.c.id)
        .limit(limit + 1)
    )
    if client_id is not None:
        statement = statement.where(orders.c.client_id == client_id)
    async with db.read() as connection:
        return _changes_page((await connection.execute(statement)).all(), limit)


def _changes_page(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[dict[str, Any]], feed.Page]:
    """Rows (``_STATUS_COLUMNS``, change_tx, horizon): the servable page."""
    if not rows:
        return [], feed.Page(served=0, more=False)
    tx = len(_STATUS_COLUMNS)
    page = feed.page([row[tx] for row in rows], int(rows[0][tx + 1]), limit)
    return [{**_status_row(row), "change_tx": row[tx]} for row in rows[: page.served]], page


async def fetch_tail(db: Database) -> feed.Cursor:
    """The cursor after every change that can be served now."""
    async with db.read() as connection:
        if db.dialect == "postgresql":
            horizon = (await connection.execute(select(_PG_HORIZON))).scalar_one()
        else:
            newest = select(func.coalesce(func.max(orders.c.change_tx), 0))
            horizon = (await connection.execute(newest)).scalar_one() + 1
    return feed.tail(int(horizon))


_ORDER_SQL = fast_select(
    orders,
    (
        "id",
        "client_id",
        "internal_order_id",
        "status",
        "currency",
        "amount",
        "elements",
        "bill_version",
        "created_at",
        "updated_at",
    ),
    f"{orders.c.id.name} = $1",
)


async def fetch_order_view(db: Database, order_id: str) -> dict[str, Any] | None:
    """One order in the wire shape of ``OrderView``: every payer call reads it, often.

    Measured under the payment benchmark, building it through SQLAlchemy rows, the
    domain object and the response model kept eda's one core busy; this path asks
    asyncpg for the row and writes the wire dict directly.
    """
    if not db.has_fast_reads:
        async with db.read() as connection:
            order = await OrderRepository(connection).get(order_id)
        return None if order is None else order_wire(order)
    rows = await db.fetch_fast(_ORDER_SQL, order_id)
    if not rows:
        return None
    row = rows[0]
    elements = row[6]
    return {
        "order_id": row[0],
        "client_id": row[1],
        "internal_order_id": row[2],
        "status": row[3],
        "bill": {
            "currency": row[4],
            "amount": row[5],
            "elements": orjson.loads(elements) if isinstance(elements, str) else elements,
        },
        "bill_version": row[7],
        "created_at": wire_time(row[8]),
        "updated_at": wire_time(row[9]),
    }


def order_wire(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "client_id": order.client_id,
        "internal_order_id": order.internal_order_id,
        "status": order.status.value,
        "bill": {
            "currency": order.bill.currency,
            "amount": order.bill.amount,
            "elements": [{"name": e.name, "amount": e.amount} for e in order.bill.elements],
        },
        "bill_version": order.bill_version,
        "created_at": wire_time(order.created_at),
        "updated_at": wire_time(order.updated_at),
    }


class OrderRepository(Repository):
    async def insert_if_absent(self, order: Order) -> bool:
        """Insert unless (client_id, internal_order_id) exists; True when this call inserted."""
        values = {**_to_row(order), "change_tx": await self._change_tx()}
        return await self.insert_new(orders, values, "client_id", "internal_order_id")

    async def _change_tx(self) -> Any:
        """This transaction's number for ``change_tx``: every status write stamps it."""
        if self.session.dialect.name == "postgresql":
            return _PG_XID_NOTIFYING
        # SQLite: write transactions hold the database lock from BEGIN IMMEDIATE to COMMIT,
        # so the numbers taken here commit in the order they are taken.
        newest = select(func.coalesce(func.max(orders.c.change_tx), 0))
        return (await self.session.execute(newest)).scalar_one() + 1

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        statement = select(orders).where(orders.c.id == order_id)
        if for_update:
            # PostgreSQL: writers of one order queue here. SQLite ignores it; its write
            # transactions already hold the database lock (BEGIN IMMEDIATE).
            statement = statement.with_for_update()
        return await self.first(statement, _to_order)

    async def get_by_internal_id(
        self, client_id: str, internal_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        statement = select(orders).where(
            orders.c.client_id == client_id,
            orders.c.internal_order_id == internal_order_id,
        )
        if for_update:
            statement = statement.with_for_update()
        return await self.first(statement, _to_order)

    async def save(self, before: Order, after: Order) -> bool:
        """Write ``after`` only if the row is still at ``before.version``; False if it did not."""
        values = _to_row(after)
        for key in ("id", "client_id", "internal_order_id", "created_at"):
            del values[key]
        values["change_tx"] = await self._change_tx()
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
                change_tx=await self._change_tx(),
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
