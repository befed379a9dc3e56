"""The accruals table and every query on it (SQLAlchemy Core).

Amounts are stored as canonical decimal strings, never floats, as in eda.
Balances are summed in Python with ``Decimal`` from those strings: SQLite has
no exact decimal type (``SUM`` over text goes through a double), and summing
in Python keeps one exact code path for both databases. A user's history is
small for this stand-in; the query reads only two narrow columns by index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Index, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from qrpay.cashback.domain import Accrual
from qrpay.kernel.clock import utc
from qrpay.kernel.db import new_metadata

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


def _to_row(accrual: Accrual) -> dict[str, Any]:
    return {
        "order_id": accrual.order_id,
        "user_id": accrual.user_id,
        "amount": accrual.amount,
        "currency": accrual.currency,
        "source": accrual.source,
        "created_at": accrual.created_at,
    }


def _to_accrual(row: Row[Any]) -> Accrual:
    m = row._mapping
    return Accrual(
        order_id=m["order_id"],
        user_id=m["user_id"],
        amount=m["amount"],
        currency=m["currency"],
        source=m["source"],
        created_at=utc(m["created_at"]),
    )


class AccrualRepository:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def insert_if_absent(self, accrual: Accrual) -> bool:
        """Insert unless the order already has an accrual; True when this call inserted."""
        dialect = self.session.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(accruals)
            .values(_to_row(accrual))
            .on_conflict_do_nothing(index_elements=["order_id"])
        )
        result = await self.session.execute(statement)
        return bool(result.rowcount == 1)

    async def get(self, order_id: str) -> Accrual | None:
        result = await self.session.execute(select(accruals).where(accruals.c.order_id == order_id))
        row = result.first()
        return None if row is None else _to_accrual(row)

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
