"""The invoices and operations tables and every query on them (SQLAlchemy Core).

Amounts are canonical decimal strings, never floats. There is no balance column:
the invoice's amounts are derived from its succeeded operations.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Update,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    update,
)

from qrpay.kernel.db import amount_column, currency_column, new_metadata, time_column
from qrpay.kernel.repository import Repository, record_of, values_of
from qrpay.transactions.domain import InvoiceRecord, OperationRecord
from qrpay.transactions.gateway import GatewayResult
from qrpay.transactions.schemas import OperationKind, OperationStatus

metadata = new_metadata()

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    currency_column(),
    Column("callback_queue", String(64), nullable=False),
    Column("callback_task", String(128), nullable=False),
    time_column("created_at"),
)

operations = Table(
    "operations",
    metadata,
    Column("invoice_id", String(64), nullable=False),
    # Longer than a caller's ids: auto-release ids are "auto-release:<hold id>".
    Column("operation_id", String(160), nullable=False),
    # The operation's place in its invoice's log (0, 1, ...), assigned under the invoice's lock.
    Column("position", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    amount_column(),
    currency_column(),
    Column("target", String(160), nullable=True),
    Column("payment_method_id", String(64), nullable=True),
    Column("token", String(256), nullable=True),
    Column("reference", String(128), nullable=True),
    Column("reason", String(64), nullable=True),
    Column("attempts", Integer, nullable=False),
    # A processor's lease: nobody else calls the gateway for this operation until then.
    time_column("claimed_until", nullable=True),
    time_column("created_at"),
    time_column("finished_at", nullable=True),
    time_column("callback_sent_at", nullable=True),
    Column("capture", Boolean, nullable=False, server_default=false()),
    # Definite refusals of a clear so far; its next try goes under a new gateway key.
    Column("refusals", Integer, nullable=False, server_default="0"),
    # Idempotency of POST .../operations: the database, not the code, guarantees it.
    PrimaryKeyConstraint("invoice_id", "operation_id", name="pk_operations"),
    ForeignKeyConstraint(
        ["invoice_id"], ["invoices.invoice_id"], name="fk_operations_invoice_id_invoices"
    ),
    # The relay's two scans: unprocessed operations and undelivered callbacks.
    Index("ix_operations_status_claimed_until", "status", "claimed_until"),
    Index("ix_operations_callback_sent_at_status", "callback_sent_at", "status"),
    # The auto-release scan: succeeded holds by age.
    Index("ix_operations_kind_status_finished_at", "kind", "status", "finished_at"),
)


_invoice = partial(record_of, InvoiceRecord)
_operation = partial(record_of, OperationRecord)
# The invoice's columns as the relay's join labels them.
_INVOICE_PREFIX = "invoice_"


def _op_key(invoice_id: str, operation_id: str) -> Any:
    return and_(operations.c.invoice_id == invoice_id, operations.c.operation_id == operation_id)


_PENDING = operations.c.status == OperationStatus.PENDING.value


def _update(op: OperationRecord, *still: ColumnElement[bool]) -> Update:
    """An update of ``op``'s row that changes it only where ``still`` holds."""
    return update(operations).where(_op_key(op.invoice_id, op.operation_id), *still)


class TransactionsRepository(Repository):
    # -- invoices

    async def insert_invoice_if_absent(self, invoice: InvoiceRecord) -> bool:
        return await self.insert_new(invoices, values_of(invoice), "invoice_id")

    async def get_invoice(
        self, invoice_id: str, *, for_update: bool = False
    ) -> InvoiceRecord | None:
        # ``for_update``: every change to an invoice's operations queues here.
        return await self.find(invoices, _invoice, for_update=for_update, invoice_id=invoice_id)

    async def set_invoice_user(self, invoice_id: str, user_id: str) -> None:
        await self.session.execute(
            update(invoices).where(invoices.c.invoice_id == invoice_id).values(user_id=user_id)
        )

    # -- operations

    async def operations_of(self, invoice_id: str) -> list[OperationRecord]:
        result = await self.session.execute(
            select(operations)
            .where(operations.c.invoice_id == invoice_id)
            .order_by(operations.c.position)
        )
        return [_operation(row) for row in result]

    async def get_operation(self, invoice_id: str, operation_id: str) -> OperationRecord | None:
        return await self.find(
            operations, _operation, invoice_id=invoice_id, operation_id=operation_id
        )

    async def insert_operation(
        self, op: OperationRecord, position: int, *, claimed_until: datetime | None = None
    ) -> None:
        """Add ``op`` as the invoice's ``position``-th operation (call with the invoice locked);
        ``claimed_until``: a processor's lease taken with it (its ``attempts`` say so)."""
        await self.session.execute(
            operations.insert().values(
                values_of(
                    op,
                    position=position,
                    amount=op.amount_text,
                    claimed_until=claimed_until,
                    finished_at=None,
                    callback_sent_at=None,
                )
            )
        )

    async def claim_pending(
        self,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        only: tuple[str, str] | None = None,
    ) -> list[OperationRecord]:
        """Take a lease on up to ``limit`` pending operations nobody holds a lease on.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent relays pick disjoint
        rows; one that reads after another committed sees the lease and skips the
        row too. SQLite: the write transaction is serialized anyway.
        """
        statement = (
            select(operations)
            .where(
                _PENDING,
                or_(operations.c.claimed_until.is_(None), operations.c.claimed_until <= now),
            )
            .order_by(operations.c.created_at)
            .limit(limit)
        )
        if only is not None:
            statement = statement.where(_op_key(*only))
        if self.session.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = [_operation(row) for row in await self.session.execute(statement)]
        claimed = []
        for op in rows:
            await self.session.execute(
                _update(op).values(claimed_until=now + lease, attempts=operations.c.attempts + 1)
            )
            claimed.append(replace(op, attempts=op.attempts + 1))
        return claimed

    async def record_result(
        self, op: OperationRecord, result: GatewayResult, now: datetime, *, reported: bool = False
    ) -> bool:
        """Write the outcome once: False if the operation had already finished.

        ``reported``: its callback is marked sent with it (nobody needs one: a captured hold's
        owner hears of its clear)."""
        return await self.changed_one(
            _update(op, _PENDING).values(
                status=result.status.value,
                reason=result.reason,
                reference=result.reference or op.reference,
                finished_at=now,
                claimed_until=None,
                **({"callback_sent_at": now} if reported else {}),
            )
        )

    async def record_refusal(self, op: OperationRecord, retry_at: datetime) -> bool:
        """Count a refusal of ``op``'s current key and release it until ``retry_at``; False if
        it finished meanwhile or another processor counted this refusal already."""
        return await self.changed_one(
            _update(op, _PENDING, operations.c.refusals == op.refusals).values(
                refusals=op.refusals + 1, claimed_until=retry_at
            )
        )

    async def cancel_unsent(self, op: OperationRecord, now: datetime) -> bool:
        """Cancel a pending operation no processor has taken to the gateway; False if one has.

        A processor's claim bumps ``attempts`` in the same statement as its lease, so a
        row still at zero attempts was never sent (PostgreSQL re-checks it after waiting
        for a concurrent claim's lock).
        """
        return await self.changed_one(
            _update(op, _PENDING, operations.c.attempts == 0).values(
                status=OperationStatus.CANCELED.value,
                reason="voided",
                finished_at=now,
                claimed_until=None,
            )
        )

    async def release_claim(self, op: OperationRecord, retry_at: datetime) -> None:
        await self.session.execute(_update(op, _PENDING).values(claimed_until=retry_at))

    async def undelivered(
        self, *, limit: int, only: tuple[str, str] | None = None
    ) -> list[tuple[InvoiceRecord, OperationRecord]]:
        """Finished operations whose callback was not put on the owner's queue yet."""
        statement = (
            select(
                operations,
                *(column.label(_INVOICE_PREFIX + column.name) for column in invoices.c),
            )
            .join(invoices, invoices.c.invoice_id == operations.c.invoice_id)
            .where(
                operations.c.callback_sent_at.is_(None),
                operations.c.status != OperationStatus.PENDING.value,
            )
            .order_by(operations.c.finished_at)
            .limit(limit)
        )
        if only is not None:
            statement = statement.where(_op_key(*only))
        result = await self.session.execute(statement)
        return [
            (record_of(InvoiceRecord, row, prefix=_INVOICE_PREFIX), _operation(row))
            for row in result
        ]

    async def mark_callback_sent(self, op: OperationRecord, now: datetime) -> bool:
        return await self.changed_one(
            _update(op, operations.c.callback_sent_at.is_(None)).values(callback_sent_at=now)
        )

    async def expired_hold_candidates(
        self, cutoff: datetime, *, limit: int
    ) -> list[tuple[str, str]]:
        """(invoice_id, hold_id) of succeeded holds older than ``cutoff`` with no clear or
        unhold pending or succeeded; the domain re-checks each under the invoice's lock."""
        settlement = operations.alias("settlement")
        statement = (
            select(operations.c.invoice_id, operations.c.operation_id)
            .where(
                operations.c.kind == OperationKind.HOLD.value,
                operations.c.status == OperationStatus.SUCCEEDED.value,
                operations.c.finished_at <= cutoff,
                ~exists().where(
                    settlement.c.invoice_id == operations.c.invoice_id,
                    settlement.c.target == operations.c.operation_id,
                    settlement.c.kind.in_([OperationKind.CLEAR.value, OperationKind.UNHOLD.value]),
                    settlement.c.status.in_(
                        [OperationStatus.PENDING.value, OperationStatus.SUCCEEDED.value]
                    ),
                ),
            )
            .order_by(operations.c.finished_at)
            .limit(limit)
        )
        result = await self.session.execute(statement)
        return [(invoice_id, operation_id) for invoice_id, operation_id in result]

    async def count_pending(self) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(operations).where(_PENDING)
        )
        return int(result.scalar_one())


# -- the support tools' reads (issue 19) ---------------------------------------------------

# An order's invoices, for `qrpay support order` (``invoices_of_order``).
Index("ix_invoices_order_id", invoices.c.order_id)
# The most invoices one support read lists (an order has one per payment).
SUPPORT_INVOICES_MAX = 100


class SupportReads(TransactionsRepository):
    """What the support tools read: an order's invoices with their operations."""

    async def invoices_of_order(
        self, order_id: str, *, limit: int = SUPPORT_INVOICES_MAX
    ) -> list[tuple[InvoiceRecord, list[OperationRecord]]]:
        """The order's invoices, oldest first (at most ``limit``), each with its operations."""
        found = await self.session.execute(
            select(invoices)
            .where(invoices.c.order_id == order_id)
            .order_by(invoices.c.created_at, invoices.c.invoice_id)
            .limit(limit)
        )
        records = [_invoice(row) for row in found]
        by_invoice: dict[str, list[OperationRecord]] = {r.invoice_id: [] for r in records}
        if by_invoice:
            ops = await self.session.execute(
                select(operations)
                .where(operations.c.invoice_id.in_(list(by_invoice)))
                .order_by(operations.c.invoice_id, operations.c.position)
            )
            for row in ops:
                op = _operation(row)
                by_invoice[op.invoice_id].append(op)
        return [(record, by_invoice[record.invoice_id]) for record in records]
