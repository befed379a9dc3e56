"""The payment_methods table and every query on it (SQLAlchemy Core).

Ids are global: one id belongs to one user for good. The upsert enforces it in
the database: a conflicting id is only updated when the stored row has the same
user, so binding another user's id changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from qrpay.cardstorage.domain import PaymentMethod
from qrpay.cardstorage.schemas import PaymentMethodType
from qrpay.kernel.clock import utc
from qrpay.kernel.db import new_metadata

metadata = new_metadata()

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("type", String(16), nullable=False),
    Column("token", String(256), nullable=False),
    Column("system", String(32), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("expiry_month", Integer, nullable=False),
    Column("expiry_year", Integer, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_payment_methods_user_id", "user_id"),
)

# What a re-bind replaces; id, user_id and created_at stay.
_REPLACED = (
    "type",
    "token",
    "system",
    "last4",
    "expiry_month",
    "expiry_year",
    "available",
    "updated_at",
)


def _to_row(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "user_id": method.user_id,
        "type": method.type.value,
        "token": method.token,
        "system": method.system,
        "last4": method.last4,
        "expiry_month": method.expiry_month,
        "expiry_year": method.expiry_year,
        "available": method.available,
        "created_at": method.created_at,
        "updated_at": method.updated_at,
    }


def _to_method(row: Row[Any]) -> PaymentMethod:
    m = row._mapping
    return PaymentMethod(
        id=m["id"],
        user_id=m["user_id"],
        type=PaymentMethodType(m["type"]),
        token=m["token"],
        system=m["system"],
        last4=m["last4"],
        expiry_month=m["expiry_month"],
        expiry_year=m["expiry_year"],
        available=bool(m["available"]),
        created_at=utc(m["created_at"]),
        updated_at=utc(m["updated_at"]),
    )


class PaymentMethodRepository:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def upsert(self, method: PaymentMethod) -> bool:
        """Insert, or replace the row with this id if it is the same user's.

        False when the id belongs to another user (nothing was written).
        """
        dialect = self.session.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(payment_methods).values(_to_row(method))
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={name: statement.excluded[name] for name in _REPLACED},
            where=payment_methods.c.user_id == statement.excluded.user_id,
        )
        result = await self.session.execute(statement)
        return bool(result.rowcount == 1)

    async def get(self, method_id: str) -> PaymentMethod | None:
        result = await self.session.execute(
            select(payment_methods).where(payment_methods.c.id == method_id)
        )
        row = result.first()
        return None if row is None else _to_method(row)

    async def list_for_user(self, user_id: str) -> list[PaymentMethod]:
        result = await self.session.execute(
            select(payment_methods)
            .where(payment_methods.c.user_id == user_id)
            .order_by(payment_methods.c.created_at, payment_methods.c.id)
        )
        return [_to_method(row) for row in result]
