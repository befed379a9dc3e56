"""cashback's use cases: accrue once per order, a user's balance and history."""

from __future__ import annotations

from collections.abc import Callable

from qrpay.cashback.domain import Accrual, balances
from qrpay.cashback.metrics import CashbackMetrics
from qrpay.cashback.repository import AccrualRepository
from qrpay.cashback.schemas import AccrualIn, CashbackCode
from qrpay.kernel.clock import Clock
from qrpay.kernel.db import Database
from qrpay.kernel.errors import Conflict, DependencyUnavailable


class CashbackService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: CashbackMetrics,
        *,
        failing: Callable[[], bool] = lambda: False,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        # Read on every call: the live config's ``cashback_service.fail_accruals``.
        self.failing = failing

    async def accrue(self, order_id: str, body: AccrualIn) -> tuple[Accrual, bool]:
        """The order's accrual and whether this call created it."""
        if self.failing():
            raise DependencyUnavailable(
                "cashback accruals are switched off", code=CashbackCode.CASHBACK_UNAVAILABLE
            )
        fresh = Accrual.new(
            order_id=order_id,
            user_id=body.user_id,
            amount=body.amount,
            currency=body.currency,
            source=body.source,
            now=self.clock.now(),
        )
        async with self.db.write() as session:
            repo = AccrualRepository(session)
            # Insert first and let the primary key decide: reading first would let two
            # instances both see "absent".
            created = await repo.insert_if_absent(fresh)
            existing = None if created else await repo.get(order_id)
        if created:
            self.metrics.accruals.inc()
            return fresh, True
        if existing is None:  # pragma: no cover - accruals are never deleted
            raise Conflict(
                "the accrual changed concurrently, try again", code=CashbackCode.ACCRUAL_BUSY
            )
        if not existing.same_as(fresh):
            raise Conflict(
                "this order already has another cashback accrual",
                code=CashbackCode.ACCRUAL_MISMATCH,
            )
        return existing, False

    async def balance(self, user_id: str) -> dict[str, str]:
        async with self.db.read() as session:
            entries = await AccrualRepository(session).amounts_for_user(user_id)
        return balances(entries)

    async def history(self, user_id: str) -> list[Accrual]:
        async with self.db.read() as session:
            return await AccrualRepository(session).history(user_id)
