"""An order's payments, their reserved items and their refunds (tables in ``eda.repository``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from qrpay.eda.domain import Order
from qrpay.eda.ledger import Ledger, Payment
from qrpay.eda.refunds import RefundPart
from qrpay.eda.repository import (
    ORDER_COLUMNS,
    OrderRepository,
    orders,
    payment_items,
    payments,
    refunds,
    to_order,
)
from qrpay.eda.schemas import PaymentState, RefundState
from qrpay.kernel.clock import utc, wire_time
from qrpay.kernel.db import Database, Statement
from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import format_amount
from qrpay.kernel.repository import Repository, from_json

# A payment's (or a refund part's) id -> (began, last changed).
PaymentTimes = dict[str, tuple[datetime, datetime]]


@dataclass(frozen=True, slots=True)
class Ledgered:
    """An order as read with its payments and refunds, and when each of those began and
    last changed."""

    order: Order
    ledger: Ledger
    payment_times: PaymentTimes
    refund_times: PaymentTimes


_PAYMENT_COLUMNS = (
    "id",
    "amount",
    "tip",
    "items",
    "state",
    "invoice_id",
    "token",
    "request_hash",
    "paid_seq",
    "created_at",
    "updated_at",
)


def _to_payment(p: Sequence[Any]) -> Payment:
    """A payment from a row's ``_PAYMENT_COLUMNS`` (asyncpg's or SQLAlchemy's)."""
    return Payment(
        id=p[0],
        amount=Decimal(p[1]),
        tip=Decimal(p[2]),
        items=frozenset(from_json(p[3])),
        state=PaymentState(p[4]),
        invoice_id=p[5],
        token=p[6],
        request_hash=p[7],
        paid_seq=p[8],
    )


def _payment_times(p: Sequence[Any]) -> tuple[datetime, datetime]:
    return utc(p[9]), utc(p[10])


def _to_refund(m: Any) -> RefundPart:
    """A refund part from a row's mapping (or the ledger statement's JSON object)."""
    return RefundPart(
        refund_id=m["refund_id"],
        n=m["n"],
        payment_id=m["payment_id"],
        amount=Decimal(m["amount"]),
        tip=Decimal(m["tip"]),
        state=RefundState(m["state"]),
        request_hash=m["request_hash"],
    )


class PaymentRepository(Repository):
    async def ledger(self, order_id: str, *, for_update: bool = False) -> Ledgered | None:
        """The order and its payments, the order's row locked when ``for_update``; None for
        an unknown order. On PostgreSQL one statement (the status poll's), so a change reads
        its ledger in one round trip."""
        if self.session.dialect.name == "postgresql":
            if for_update:
                # The lock first, then the read in a statement of its own: one statement that
                # waited for the lock would still see the payments of its start's snapshot
                # (READ COMMITTED), missing those the lock's holder just wrote.
                await self.fetch(_LOCK_ORDER, order_id=order_id)
            return _ledger_of(await self.fetch(_LEDGER, order_id=order_id))
        order = await OrderRepository(self.session).get(order_id, for_update=for_update)
        if order is None:
            return None
        found, times = await self.of_order(order_id)
        parts, refund_times = await self.refunds_of(order_id)
        return Ledgered(order, Ledger(order.bill, found, parts), times, refund_times)

    async def of_order(self, order_id: str) -> tuple[tuple[Payment, ...], PaymentTimes]:
        """The order's payments in the order they began, and when each began and last changed."""
        result = await self.session.execute(
            select(*(payments.c[name] for name in _PAYMENT_COLUMNS))
            .where(payments.c.order_id == order_id)
            .order_by(payments.c.created_at, payments.c.id)
        )
        rows = result.all()
        return tuple(_to_payment(row) for row in rows), {
            row[0]: _payment_times(row) for row in rows
        }

    async def refunds_of(self, order_id: str) -> tuple[tuple[RefundPart, ...], PaymentTimes]:
        """The order's refund parts in the order they were made, and their times."""
        result = await self.session.execute(
            select(refunds)
            .where(refunds.c.order_id == order_id)
            .order_by(refunds.c.created_at, refunds.c.refund_id, refunds.c.n)
        )
        rows = [row._mapping for row in result.all()]
        times = {m["id"]: (utc(m["created_at"]), utc(m["updated_at"])) for m in rows}
        return tuple(_to_refund(m) for m in rows), times

    async def add_refund(
        self, order_id: str, parts: Sequence[RefundPart], currency: str, now: datetime
    ) -> None:
        """A refund's parts: the (order, refund, n) key refuses a second set for one refund."""
        await self.session.execute(
            insert(refunds),
            [
                {
                    "order_id": order_id,
                    "id": part.id,
                    "refund_id": part.refund_id,
                    "n": part.n,
                    "payment_id": part.payment_id,
                    "amount": format_amount(part.amount, currency),
                    "tip": format_amount(part.tip, currency),
                    "currency": currency,
                    "state": part.state.value,
                    "request_hash": part.request_hash,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for part in parts
            ],
        )

    async def move_refund(
        self, order_id: str, before: RefundPart, after: RefundPart, now: datetime
    ) -> bool:
        """``after`` written if the part is still as ``before`` was read."""
        return await self.changed_one(
            update(refunds)
            .where(
                refunds.c.order_id == order_id,
                refunds.c.id == before.id,
                refunds.c.state == before.state.value,
            )
            .values(state=after.state.value, version=refunds.c.version + 1, updated_at=now)
        )

    async def add(self, order_id: str, payment: Payment, currency: str, now: datetime) -> None:
        """The payment and its items: the items' primary key refuses one taken already, the
        (order, token) key a second payment for one token."""
        await self.session.execute(
            insert(payments).values(
                id=payment.id,
                order_id=order_id,
                invoice_id=payment.invoice_id,
                amount=format_amount(payment.amount, currency),
                tip=format_amount(payment.tip, currency),
                currency=currency,
                items=sorted(payment.items),
                state=payment.state.value,
                version=1,
                token=payment.token,
                request_hash=payment.request_hash,
                paid_seq=payment.paid_seq,
                created_at=now,
                updated_at=now,
            )
        )
        if payment.items:
            await self.session.execute(
                insert(payment_items),
                [
                    {"order_id": order_id, "item": i, "payment_id": payment.id}
                    for i in payment.items
                ],
            )

    async def move(self, before: Payment, after: Payment, now: datetime) -> bool:
        """``after`` written if the payment is still as ``before`` was read; a release frees
        its items."""
        moved = await self.changed_one(
            update(payments)
            .where(payments.c.id == before.id, payments.c.state == before.state.value)
            .values(
                state=after.state.value,
                paid_seq=after.paid_seq,
                version=payments.c.version + 1,
                updated_at=now,
            )
        )
        if moved and after.state == PaymentState.RELEASED:
            await self.session.execute(
                delete(payment_items).where(payment_items.c.payment_id == before.id)
            )
        return moved


_REFUND_COLUMNS = (
    "id",
    "refund_id",
    "n",
    "payment_id",
    "amount",
    "tip",
    "state",
    "request_hash",
    "created_at",
    "updated_at",
)
_o, _p, _r = orders.alias("o"), payments.alias("p"), refunds.alias("r")
# The order's refund parts as one JSON array (NULL for none), from a lateral subquery run
# once per order: a second join would repeat each payment once per part. The keys are
# names from the declared table: no outside input.
_KEYS_AND_VALUES: list[Any] = []
for _name in _REFUND_COLUMNS:
    _KEYS_AND_VALUES += (literal_column(f"'{_name}'"), _r.c[_name])
_REFUND_PARTS = (
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_object(*_KEYS_AND_VALUES),
                _r.c.created_at,
                _r.c.refund_id,
                _r.c.n,
            )
        ).label("parts")
    )
    .where(_r.c.order_id == _o.c.id)
    .lateral("rf")
)
# The order, its refunds and its payments in one statement on asyncpg (PostgreSQL only), so
# from one snapshot: every guest's status poll reads it.
_LEDGER = Statement(
    select(
        *(_o.c[name] for name in ORDER_COLUMNS),
        _REFUND_PARTS.c.parts,
        *(_p.c[name] for name in _PAYMENT_COLUMNS),
    )
    .select_from(_o.outerjoin(_REFUND_PARTS, true()).outerjoin(_p, _p.c.order_id == _o.c.id))
    .where(_o.c.id == bindparam("order_id"))
    .order_by(_p.c.created_at, _p.c.id)
)
# Before a change: the order's row locked (its payments' writers queue on it).
_LOCK_ORDER = Statement(
    select(orders.c.id).where(orders.c.id == bindparam("order_id")).with_for_update()
)


async def fetch_ledger(db: Database, order_id: str) -> Ledgered | None:
    """An order with its payments and refunds, as ``PaymentRepository.ledger`` reads them,
    for a read that changes nothing; None for an unknown order."""
    if not db.has_fast_reads:
        async with db.read() as connection:
            return await PaymentRepository(connection).ledger(order_id)
    return _ledger_of(await db.fetch(_LEDGER, order_id=order_id))


def _ledger_of(rows: Sequence[Any]) -> Ledgered | None:
    """The ledger statement's rows (asyncpg's, untyped: JSON as text) as records."""
    if not rows:
        return None
    first = rows[0]
    order = to_order(first)
    parts = from_json(first[len(ORDER_COLUMNS)]) or ()
    refund_times = {
        m["id"]: (
            utc(datetime.fromisoformat(m["created_at"])),
            utc(datetime.fromisoformat(m["updated_at"])),
        )
        for m in parts
    }
    listed: list[Payment] = []
    times: PaymentTimes = {}
    offset = len(ORDER_COLUMNS) + 1
    for row in rows:
        p = row[offset:]
        if p[0] is None:
            continue  # an order without payments: the LEFT JOIN's one empty row
        listed.append(_to_payment(p))
        times[p[0]] = _payment_times(p)
    ledger = Ledger(order.bill, tuple(listed), tuple(_to_refund(m) for m in parts))
    return Ledgered(order, ledger, times, refund_times)


async def refund_problems(
    db: Database, refunding_before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Refund parts refused for good, and those still refunding since before
    ``refunding_before``: newest change first (for support's problem list)."""
    statement = (
        select(
            refunds.c.order_id,
            refunds.c.id,
            refunds.c.refund_id,
            refunds.c.payment_id,
            refunds.c.amount,
            refunds.c.tip,
            refunds.c.state,
            refunds.c.updated_at,
        )
        .where(
            or_(
                refunds.c.state == RefundState.FAILED.value,
                and_(
                    refunds.c.state == RefundState.REFUNDING.value,
                    refunds.c.updated_at < refunding_before,
                ),
            )
        )
        .order_by(refunds.c.updated_at.desc(), refunds.c.id)
        .limit(limit)
    )
    async with db.read() as connection:
        rows = (await connection.execute(statement)).all()
    return [
        {
            "order_id": r[0],
            "part_id": r[1],
            "refund_id": r[2],
            "payment_id": r[3],
            "amount": r[4],
            "tip": r[5],
            "state": r[6],
            "updated_at": wire_time(utc(r[7])),
        }
        for r in rows
    ]


# The sweep's page cursor: the last payment served, "<updated_at iso>|<id>".
def _cursor(updated_at: datetime, payment_id: str) -> str:
    return f"{utc(updated_at).isoformat()}|{payment_id}"


def _parse_cursor(text: str) -> tuple[datetime, str]:
    stamp, sep, payment_id = text.partition("|")
    try:
        if not sep or not payment_id:
            raise ValueError(text)
        return utc(datetime.fromisoformat(stamp)), payment_id
    except ValueError:
        raise InvalidInput("not a cursor of this list", code="bad_cursor") from None


async def payments_to_check(
    db: Database, updated_before: datetime, limit: int, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Payments whose hold has had no outcome since ``updated_before``, and every payment
    being rolled back: the sweep's work list, oldest change first, a page after ``after``;
    with the cursor of the next page (None on the last)."""
    stale = and_(
        payments.c.state.in_([PaymentState.HOLDING.value]),
        payments.c.updated_at < updated_before,
    )
    rolling = payments.c.state == PaymentState.ROLLING_BACK.value
    statement = (
        select(
            payments.c.order_id,
            payments.c.id,
            payments.c.invoice_id,
            payments.c.state,
            payments.c.updated_at,
        )
        .where(or_(stale, rolling))
        .order_by(payments.c.updated_at, payments.c.id)
        .limit(limit + 1)
    )
    if after:
        statement = statement.where(
            tuple_(payments.c.updated_at, payments.c.id) > tuple_(*_parse_cursor(after))
        )
    async with db.read() as connection:
        rows = (await connection.execute(statement)).all()
    page = [
        {"order_id": r[0], "payment_id": r[1], "invoice_id": r[2], "state": r[3]}
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return page, (_cursor(rows[limit - 1][4], rows[limit - 1][1]) if more else None)
