"""cashback's use cases: accrue once per key, reverse once per id, a user's balance, debt
and history, an order's accruals and reversals."""

from __future__ import annotations

from collections.abc import Callable

from qrpay.cashback.domain import Accrual, Ledger, Reversal
from qrpay.cashback.metrics import CashbackMetrics
from qrpay.cashback.repository import AccrualRepository
from qrpay.cashback.schemas import AccrualIn, CashbackCode, ReversalIn
from qrpay.kernel.clock import Clock
from qrpay.kernel.db import Database
from qrpay.kernel.errors import Conflict, DependencyUnavailable, NotFound


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
        """The order's accrual and whether this call created it. A new accrual pays the
        user's debt in its currency off first (a repayment beside it, in the same
        transaction); the accrual itself is recorded as sent."""
        if self.failing():
            raise DependencyUnavailable(
                "cashback accruals are switched off", code=CashbackCode.CASHBACK_UNAVAILABLE
            )
        now = self.clock.now()
        fresh = Accrual.new(
            order_id=order_id,
            user_id=body.user_id,
            amount=body.amount,
            currency=body.currency,
            source=body.source,
            now=now,
        )
        repaid = None
        async with self.db.write() as session:
            repo = AccrualRepository(session)
            # Insert first and let the primary key decide: reading first would let two
            # instances both see "absent".
            created = await repo.insert_if_absent(fresh)
            # A user who never owed in this currency has nothing to repay (most of them):
            # no lock, no ledger read. A debt a reversal adds meanwhile is repaid by the
            # next accrual; one that exists is repaid under the account's lock, which its
            # reversals and the other repayments take, so it is never repaid twice.
            if created and await repo.ever_owed(fresh.user_id, fresh.currency):
                await repo.lock_account(fresh.user_id, fresh.currency, now)
                repaid = (await repo.user_ledger(fresh.user_id)).repayment(fresh, now)
                if repaid is not None:
                    await repo.insert_repayment(repaid)
            existing = None if created else await repo.get(order_id)
        if created:
            self.metrics.accruals.inc()
            if repaid is not None:
                self.metrics.debt_repayments.inc()
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

    async def reverse(
        self, accrual_key: str, reversal_id: str, body: ReversalIn
    ) -> tuple[Reversal, bool]:
        """The reversal and whether this call created it: at most once per ``reversal_id``
        (the primary key), a repeat with the same amount answers it again, another is 409.

        Under the lock of the accrual's user's account in its currency, which every
        reversal and debt repayment of that account takes: the sum of an accrual's
        reversals and the balance they take from are read and written by one at a time.
        """
        now = self.clock.now()
        created = False
        async with self.db.write() as session:
            repo = AccrualRepository(session)
            accrual = await repo.get(accrual_key)
            if accrual is None:
                raise NotFound(f"no accrual {accrual_key!r}", code=CashbackCode.ACCRUAL_NOT_FOUND)
            await repo.lock_account(accrual.user_id, accrual.currency, now)
            reversal = await repo.get_reversal(reversal_id)
            if reversal is None:
                ledger = await repo.user_ledger(accrual.user_id)
                fresh = ledger.reverse(
                    accrual,
                    reversal_id=reversal_id,
                    amount=body.amount,
                    currency=body.currency,
                    now=now,
                )
                # The primary key decides: the same id used for another user's accrual is
                # not under this lock.
                created = await repo.insert_reversal_if_absent(fresh)
                reversal = fresh if created else await repo.get_reversal(reversal_id)
        if reversal is None:  # pragma: no cover - reversals are never deleted
            raise Conflict(
                "the reversal changed concurrently, try again", code=CashbackCode.ACCRUAL_BUSY
            )
        if created:
            self.metrics.reversals.inc()
            if reversal.owes:
                self.metrics.debts.inc()
            return reversal, True
        if not reversal.same_request(accrual_key, body.amount, body.currency):
            raise Conflict(
                "this reversal id already reversed another amount or accrual",
                code=CashbackCode.REVERSAL_MISMATCH,
            )
        return reversal, False

    async def ledger(self, user_id: str) -> Ledger:
        """The user's entries: balances, debts and history."""
        async with self.db.read() as session:
            return await AccrualRepository(session).user_ledger(user_id)

    async def order(self, order_id: str) -> Ledger:
        """The order's accruals, their reversals and the debt repayments they made."""
        async with self.db.read() as session:
            return await AccrualRepository(session).order_ledger(order_id)
