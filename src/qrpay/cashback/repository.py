"""The cashback tables and every query on them (SQLAlchemy Core).

Amounts are stored as canonical decimal strings, never floats, as in eda.
Balances and debts are summed in Python with ``Decimal`` from those strings: SQLite has
no exact decimal type (``SUM`` over text goes through a double), and summing
in Python keeps one exact code path for both databases. A user's history is
small for this stand-in; the queries read it by index on ``user_id``.

Whatever changes a user's balance or debt in one currency (a reversal, an accrual's debt
repayment) first locks that user's ``accounts`` row, so those writers queue there on
PostgreSQL (SQLite's write transactions already hold the file lock, ``BEGIN IMMEDIATE``).
The row holds nothing else: the entries are the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    Table,
    or_,
    select,
)

from qrpay.cashback.domain import Accrual, Ledger, Repayment, Reversal
from qrpay.kernel.db import amount_column, currency_column, new_metadata, time_column
from qrpay.kernel.money import format_amount
from qrpay.kernel.repository import Repository, record_of, values_of

R = TypeVar("R")

metadata = new_metadata()

accruals = Table(
    "accruals",
    metadata,
    # One accrual per order: the primary key, not the code, guarantees it.
    Column("order_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    amount_column(),
    currency_column(),
    Column("source", String(64), nullable=False),
    time_column("created_at"),
    Index("ix_accruals_user_id", "user_id"),
)

reversals = Table(
    "reversals",
    metadata,
    # At most once per reversal id (a refund part): the primary key guarantees it.
    Column("reversal_id", String(128), primary_key=True),
    Column("accrual_key", String(128), ForeignKey("accruals.order_id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    amount_column(),
    currency_column(),
    amount_column("taken"),
    amount_column("debt"),
    time_column("created_at"),
    Index("ix_reversals_accrual_key", "accrual_key"),
    Index("ix_reversals_user_id", "user_id"),
)

debt_repayments = Table(
    "debt_repayments",
    metadata,
    # At most one repayment per accrual: the accrual's key is the primary key.
    Column("accrual_key", String(128), ForeignKey("accruals.order_id"), primary_key=True),
    Column("user_id", String(128), nullable=False),
    amount_column(),
    currency_column(),
    time_column("created_at"),
    Index("ix_debt_repayments_user_id", "user_id"),
)

# One lock row per user and currency (see the module's docstring).
accounts = Table(
    "accounts",
    metadata,
    Column("user_id", String(128), primary_key=True),
    currency_column(primary_key=True),
    time_column("created_at"),
)


_to_accrual = partial(record_of, Accrual)
_to_reversal = partial(record_of, Reversal)
_to_repayment = partial(record_of, Repayment)

# Each entry table with the accrual key its rows belong to.
_KEY_OF = {
    accruals.name: accruals.c.order_id,
    reversals.name: reversals.c.accrual_key,
    debt_repayments.name: debt_repayments.c.accrual_key,
}
Where = Callable[[Table], ColumnElement[bool]]


def _of_user(user_id: str) -> Where:
    return lambda table: table.c.user_id == user_id


def _of_order(order_id: str) -> Where:
    """Accrual keys of an order: ``<order>`` (a whole bill before issue 18) or
    ``<order>.<invoice>``."""

    def where(table: Table) -> ColumnElement[bool]:
        key = _KEY_OF[table.name]
        return or_(key == order_id, key.startswith(f"{order_id}.", autoescape=True))

    return where


class AccrualRepository(Repository):
    async def insert_if_absent(self, accrual: Accrual) -> bool:
        """Insert unless the order already has an accrual; True when this call inserted."""
        return await self.insert_new(accruals, values_of(accrual), "order_id")

    async def get(self, order_id: str) -> Accrual | None:
        return await self.find(accruals, _to_accrual, order_id=order_id)

    async def lock_account(self, user_id: str, currency: str, now: datetime) -> None:
        """Lock the user's account in ``currency`` until the transaction ends (made if new)."""
        locked = (
            select(accounts.c.user_id)
            .where(accounts.c.user_id == user_id, accounts.c.currency == currency)
            .with_for_update()
        )
        if (await self.session.execute(locked)).first() is not None:
            return
        values = {"user_id": user_id, "currency": currency, "created_at": now}
        if await self.insert_new(accounts, values, "user_id", "currency"):
            return  # a row this transaction inserted is its own until it ends
        await self.session.execute(locked)  # another transaction made it meanwhile

    async def ever_owed(self, user_id: str, currency: str) -> bool:
        """Whether a reversal ever left the user a debt in ``currency`` (one indexed row at
        most: an accrual reads the user's whole ledger only then)."""
        zero = format_amount(Decimal(0), currency)
        statement = (
            select(reversals.c.reversal_id)
            .where(
                reversals.c.user_id == user_id,
                reversals.c.currency == currency,
                reversals.c.debt != zero,
            )
            .limit(1)
        )
        return (await self.session.execute(statement)).first() is not None

    async def user_ledger(self, user_id: str) -> Ledger:
        return await self._ledger(_of_user(user_id))

    async def order_ledger(self, order_id: str) -> Ledger:
        """The accruals of an order, their reversals and the debt repayments they made."""
        return await self._ledger(_of_order(order_id))

    async def _ledger(self, where: Where) -> Ledger:
        """The entries ``where`` picks from each table, oldest first (ties by key)."""
        return Ledger(
            accruals=await self._rows(accruals, where, accruals.c.order_id, _to_accrual),
            reversals=await self._rows(reversals, where, reversals.c.reversal_id, _to_reversal),
            repayments=await self._rows(
                debt_repayments, where, debt_repayments.c.accrual_key, _to_repayment
            ),
        )

    async def _rows(
        self, table: Table, where: Where, tie: ColumnElement[str], make: Callable[[Any], R]
    ) -> list[R]:
        statement = select(table).where(where(table)).order_by(table.c.created_at, tie)
        return [make(row) for row in await self.session.execute(statement)]

    # -- reversals

    async def insert_reversal_if_absent(self, reversal: Reversal) -> bool:
        """Insert unless the id is taken; True when this call inserted."""
        return await self.insert_new(reversals, values_of(reversal), "reversal_id")

    async def get_reversal(self, reversal_id: str) -> Reversal | None:
        return await self.find(reversals, _to_reversal, reversal_id=reversal_id)

    async def insert_repayment(self, repayment: Repayment) -> None:
        await self.session.execute(debt_repayments.insert().values(values_of(repayment)))
