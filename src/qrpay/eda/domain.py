"""The order aggregate: its states, the moves between them and the rules that guard them.

Pure: no I/O, no framework. Every change goes through a method here that checks
the move is allowed; the repository then writes it only if nobody changed the
order in between (the ``version`` the order was read at).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from qrpay.eda.schemas import CreateOutcome, EdaCode, OrderStatus, PaymentPhase
from qrpay.kernel.errors import Conflict
from qrpay.kernel.schemas import Bill

WAITING = OrderStatus.WAITING
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
PAYED = OrderStatus.PAYED
CANCELED = OrderStatus.CANCELED
CLOSED = OrderStatus.CLOSED
# Ended without qrpay taking the bill: by the TTL, or closed by the waiter.
ENDED = (CANCELED, CLOSED)
HOLDING = PaymentPhase.HOLDING
CLEARING = PaymentPhase.CLEARING
ROLLING_BACK = PaymentPhase.ROLLING_BACK

ALLOWED_MOVES: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (WAITING, IN_PROGRESS),
        (IN_PROGRESS, WAITING),  # the hold failed: the guest may try again
        (IN_PROGRESS, PAYED),
        (WAITING, CANCELED),  # TTL; never while a payment is under way
        (WAITING, PAYED),  # the last share of a split bill cleared (``eda.split``)
        (WAITING, CLOSED),  # the waiter closed it; the rest is settled outside qrpay
    }
)

# Within PAYMENT_IN_PROGRESS: the hold is under way, then exactly one of the clear and the
# rollback claims the payment. Nothing moves a payment out of CLEARING but its clear; a
# succeeded clear completes the payment from any phase (see ``complete_payment``).
ALLOWED_PHASE_MOVES: frozenset[tuple[PaymentPhase, PaymentPhase]] = frozenset(
    {(HOLDING, CLEARING), (HOLDING, ROLLING_BACK)}
)

# Orders the POS still tracks and the TTL job still watches.
OPEN_STATUSES: tuple[OrderStatus, ...] = (WAITING, IN_PROGRESS)


class TransitionNotAllowed(Exception):
    """A bug, not a client error: a use case asked for a move the table forbids."""


def same_bill(a: Bill, b: Bill) -> bool:
    """Bills are equal when they print the same: ``"100"`` and ``"100.00"`` are one amount."""
    return a.canonical() == b.canonical()


def ttl_cutoff(now: datetime, ttl_seconds: int) -> datetime:
    """Orders created before this are expired."""
    return now - timedelta(seconds=ttl_seconds)


def is_expired(status: OrderStatus, created_at: datetime, now: datetime, ttl_seconds: int) -> bool:
    return status == WAITING and created_at < ttl_cutoff(now, ttl_seconds)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_id: str
    internal_order_id: str
    status: OrderStatus
    bill: Bill
    bill_version: int
    payment_id: str | None
    # Set exactly while the status is PAYMENT_IN_PROGRESS.
    payment_phase: PaymentPhase | None
    # Bumped on every write: a write succeeds only against the version it read.
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def new(
        cls, *, order_id: str, client_id: str, internal_order_id: str, bill: Bill, now: datetime
    ) -> Order:
        return cls(
            id=order_id,
            client_id=client_id,
            internal_order_id=internal_order_id,
            status=WAITING,
            bill=bill.canonical(),
            bill_version=1,
            payment_id=None,
            payment_phase=None,
            version=1,
            created_at=now,
            updated_at=now,
        )

    def _move(
        self,
        to: OrderStatus,
        now: datetime,
        *,
        payment_id: str | None,
        phase: PaymentPhase | None = None,
    ) -> Order:
        if (self.status, to) not in ALLOWED_MOVES:
            raise TransitionNotAllowed(f"{self.status} -> {to}")
        return replace(
            self,
            status=to,
            payment_id=payment_id,
            payment_phase=phase,
            version=self.version + 1,
            updated_at=now,
        )

    def _move_phase(self, to: PaymentPhase, now: datetime) -> Order:
        if self.status != IN_PROGRESS or (self.payment_phase, to) not in ALLOWED_PHASE_MOVES:
            raise TransitionNotAllowed(f"{self.status}/{self.payment_phase} -> {to}")
        return replace(self, payment_phase=to, version=self.version + 1, updated_at=now)

    def with_bill(self, bill: Bill, now: datetime) -> tuple[Order, CreateOutcome]:
        """A repeated create: the same bill is a no-op; a new one replaces it while nobody pays."""
        if same_bill(self.bill, bill):
            return self, CreateOutcome.EXISTING
        if self.status != WAITING or self.payment_id is not None:
            raise Conflict(
                f"order is {self.status}: its bill can no longer change", code=EdaCode.ORDER_LOCKED
            )
        changed = replace(
            self,
            bill=bill.canonical(),
            bill_version=self.bill_version + 1,
            version=self.version + 1,
            updated_at=now,
        )
        return changed, CreateOutcome.BILL_REPLACED

    def start_payment(
        self,
        payment_id: str,
        amount: Decimal,
        currency: str,
        now: datetime,
        *,
        bill_version: int | None = None,
    ) -> Order:
        if self.status == IN_PROGRESS:
            if self.payment_id == payment_id:
                return self
            raise Conflict(
                "another payment of this order is under way", code=EdaCode.PAYMENT_IN_PROGRESS
            )
        if self.status == PAYED:
            raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
        if self.status in ENDED:
            raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
        if currency != self.bill.currency or amount != self.bill.total:
            raise Conflict("the bill has changed", code=EdaCode.BILL_CHANGED)
        if bill_version is not None and bill_version != self.bill_version:
            raise Conflict("the bill has changed", code=EdaCode.BILL_CHANGED)
        return self._move(IN_PROGRESS, now, payment_id=payment_id, phase=HOLDING)

    def _check_ours(self, payment_id: str) -> None:
        if self.status == WAITING:
            raise Conflict(
                "no payment of this order is under way", code=EdaCode.PAYMENT_NOT_STARTED
            )
        if self.status in ENDED:
            raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
        if self.payment_id != payment_id:
            raise Conflict("the order's payment is another one", code=EdaCode.PAYMENT_MISMATCH)

    def claim_clear(self, payment_id: str, now: datetime) -> Order:
        """The clear's claim: after it, nothing but this payment's clear settles the order."""
        self._check_ours(payment_id)
        if self.status == PAYED or self.payment_phase == CLEARING:
            return self
        if self.payment_phase == ROLLING_BACK:
            raise Conflict("the payment is being rolled back", code=EdaCode.PAYMENT_ROLLING_BACK)
        return self._move_phase(CLEARING, now)

    def _may_give_back(self, payment_id: str) -> bool:
        """Whether this payment may still be undone; False when it already was.

        An order already given back (WAITING, or closed by TTL since) has nothing held.
        """
        if self.status == WAITING or self.status in ENDED:
            return False
        if self.payment_id != payment_id:
            raise Conflict("the order's payment is another one", code=EdaCode.PAYMENT_MISMATCH)
        if self.status == PAYED:
            raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
        if self.payment_phase == CLEARING:
            raise Conflict("the payment is being cleared", code=EdaCode.PAYMENT_CLEARING)
        return True

    def begin_rollback(self, payment_id: str, now: datetime) -> Order:
        """The rollback's claim: after it, the payment is never cleared; its hold is released."""
        if not self._may_give_back(payment_id) or self.payment_phase == ROLLING_BACK:
            return self
        return self._move_phase(ROLLING_BACK, now)

    def fail_payment(self, payment_id: str, now: datetime) -> Order:
        """The order back to the guest: the hold failed, or the rollback released it."""
        if not self._may_give_back(payment_id):
            return self
        return self._move(WAITING, now, payment_id=None)

    def complete_payment(self, payment_id: str, now: datetime) -> Order:
        """PAYED: this payment's clear succeeded, whatever phase the order is in.

        A succeeded clear is a fact about money, not a request: the order must say so. The
        clear either claimed the order first (CLEARING) or was fenced in transactions (a
        captured hold: its clear is recorded with its success under the invoice's lock,
        and a rollback's void of it is refused), so it never meets an order given back.
        """
        self._check_ours(payment_id)
        if self.status == PAYED:
            return self
        return self._move(PAYED, now, payment_id=payment_id)

    def share_changed(self, now: datetime) -> Order:
        """A share of this order began or moved: the order's version and feed position move
        with it, so a POS following the feed learns of each payment."""
        if self.status != WAITING:
            raise TransitionNotAllowed(f"a share of an order {self.status}")
        return replace(self, version=self.version + 1, updated_at=now)

    def paid_by_shares(self, now: datetime) -> Order:
        """PAYED: the shares cleared add up to the bill."""
        return self._move(PAYED, now, payment_id=None)

    def close(self, now: datetime) -> Order:
        """The waiter closes the order from the POS; the rest is paid outside qrpay.

        Never while a payment is under way: its money would have no order to land on.
        """
        if self.status == CLOSED:
            return self
        if self.status == PAYED:
            raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
        if self.status == CANCELED:
            raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
        if self.status == IN_PROGRESS:
            raise Conflict("a payment of this order is under way", code=EdaCode.PAYMENT_IN_PROGRESS)
        return self._move(CLOSED, now, payment_id=None)

    def expire(self, now: datetime, ttl_seconds: int) -> Order:
        """The TTL rule for one order; the job applies the same rule to many in one statement."""
        if not is_expired(self.status, self.created_at, now, ttl_seconds):
            return self
        return self._move(CANCELED, now, payment_id=None)
