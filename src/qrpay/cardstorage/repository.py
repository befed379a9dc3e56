"""The payment_methods table and every query on it (SQLAlchemy Core).

Ids are global: one id belongs to one user for good. The upsert enforces it in
the database: a conflicting id is only updated when the stored row has the same
user, so binding another user's id changes nothing.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    select,
)

from qrpay.cardstorage.domain import PaymentMethod
from qrpay.kernel.db import created_updated, new_metadata
from qrpay.kernel.repository import Repository, dialect_insert, record_of, values_of

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
    *created_updated(),
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

_to_method = partial(record_of, PaymentMethod)


class PaymentMethodRepository(Repository):
    async def upsert(self, method: PaymentMethod) -> bool:
        """Insert, or replace the row with this id if it is the same user's.

        False when the id belongs to another user (nothing was written).
        """
        statement = dialect_insert(self.session, payment_methods).values(values_of(method))
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={name: statement.excluded[name] for name in _REPLACED},
            where=payment_methods.c.user_id == statement.excluded.user_id,
        )
        return await self.changed_one(statement)

    async def get(self, method_id: str) -> PaymentMethod | None:
        return await self.find(payment_methods, _to_method, id=method_id)

    async def list_for_user(self, user_id: str) -> list[PaymentMethod]:
        result = await self.session.execute(
            select(payment_methods)
            .where(payment_methods.c.user_id == user_id)
            .order_by(payment_methods.c.created_at, payment_methods.c.id)
        )
        return [_to_method(row) for row in result]
