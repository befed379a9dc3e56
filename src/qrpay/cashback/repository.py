"""The accruals table and every query on it (SQLAlchemy Core).

Amounts are stored as canonical decimal strings, never floats, as in eda.
Balances are summed in Python with ``Decimal`` from those strings: SQLite has
no exact decimal type (``SUM`` over text goes through a double), and summing
in Python keeps one exact code path for both databases. A user's history is
small for this stand-in; the query reads only two narrow columns by index.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Column, DateTime, Index, String, Table, select

from qrpay.cashback.domain import Accrual
from qrpay.kernel.db import new_metadata
from qrpay.kernel.repository import Repository, record_of, values_of

metadata = new_metadata()

accruals = Table(
    "accruals",
    metadata,
    # One accrual per order: the primary key, not the code, guarantees it.
    Column("order_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("amount", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_accruals_user_id", "user_id"),
)


_to_accrual = partial(record_of, Accrual)


class AccrualRepository(Repository):
    async def insert_if_absent(self, accrual: Accrual) -> bool:
        """Insert unless the order already has an accrual; True when this call inserted."""
        return await self.insert_new(accruals, values_of(accrual), "order_id")

    async def get(self, order_id: str) -> Accrual | None:
        return await self.first(
            select(accruals).where(accruals.c.order_id == order_id), _to_accrual
        )

    async def amounts_for_user(self, user_id: str) -> list[tuple[str, str]]:
        result = await self.session.execute(
            select(accruals.c.currency, accruals.c.amount).where(accruals.c.user_id == user_id)
        )
        return [(currency, amount) for currency, amount in result]

    async def history(self, user_id: str) -> list[Accrual]:
        result = await self.session.execute(
            select(accruals)
            .where(accruals.c.user_id == user_id)
            .order_by(accruals.c.created_at.desc(), accruals.c.order_id.desc())
        )
        return [_to_accrual(row) for row in result]
