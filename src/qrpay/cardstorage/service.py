"""cardstorage's use cases: bind (create or replace), list a user's methods, get one."""

from __future__ import annotations

from qrpay.cardstorage.domain import PaymentMethod
from qrpay.cardstorage.repository import PaymentMethodRepository
from qrpay.cardstorage.schemas import CardstorageCode, PaymentMethodIn
from qrpay.kernel.clock import Clock
from qrpay.kernel.db import Database
from qrpay.kernel.errors import Conflict, NotFound


def _not_found(method_id: str) -> NotFound:
    # The same answer for "no such id" and "another user's": never reveal that it exists.
    return NotFound(
        f"payment method {method_id[:64]!r} not found",
        code=CardstorageCode.PAYMENT_METHOD_NOT_FOUND,
    )


class PaymentMethodService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def bind(self, method_id: str, body: PaymentMethodIn) -> PaymentMethod:
        now = self.clock.now()
        # Building the domain object checks the token is not a card number.
        method = PaymentMethod(
            id=method_id,
            user_id=body.user_id,
            type=body.type,
            token=body.token,
            system=body.system,
            last4=body.last4,
            expiry_month=body.expiry_month,
            expiry_year=body.expiry_year,
            available=body.available,
            created_at=now,
            updated_at=now,
        )
        async with self.db.write() as session:
            repo = PaymentMethodRepository(session)
            if not await repo.upsert(method):
                raise Conflict(
                    "this payment method id is bound to another user",
                    code=CardstorageCode.PAYMENT_METHOD_TAKEN,
                )
            stored = await repo.get(method_id)
        assert stored is not None  # written in this transaction
        return stored

    async def list_for_user(self, user_id: str) -> list[PaymentMethod]:
        async with self.db.read() as session:
            return await PaymentMethodRepository(session).list_for_user(user_id)

    async def get_for_user(self, user_id: str, method_id: str) -> PaymentMethod:
        async with self.db.read() as session:
            method = await PaymentMethodRepository(session).get(method_id)
        if method is None or not method.owned_by(user_id):
            raise _not_found(method_id)
        return method
