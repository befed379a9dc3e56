"""The order aggregate: its states, the moves between them and the rules that guard them.

Pure: no I/O, no framework. Every change goes through a method here that checks
the move is allowed; the repository then writes it only if nobody changed the
order in between (the ``version`` the order was read at). The order's status while it
is open follows from its payments (``eda.ledger``): PAYED exactly when cleared payments
cover the total, PAYMENT_IN_PROGRESS while payments under way hold everything left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from qrpay.eda.ledger import Ledger
from qrpay.eda.schemas import Bill, CreateOutcome, EdaCode, OrderStatus
from qrpay.kernel.errors import Conflict

WAITING = OrderStatus.WAITING
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
PAYED = OrderStatus.PAYED
CANCELED = OrderStatus.CANCELED
CLOSED = OrderStatus.CLOSED
# Ended without qrpay taking the bill: by the TTL, or closed by the waiter.
ENDED = (CANCELED, CLOSED)

ALLOWED_MOVES: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (WAITING, IN_PROGRESS),  # payments under way hold everything left
        (IN_PROGRESS, WAITING),  # one of them was given back: the guest may try again
        (IN_PROGRESS, PAYED),
        (WAITING, PAYED),  # a bill replaced down to what is paid
        (WAITING, CANCELED),  # TTL; never while a payment is under way or paid
        (WAITING, CLOSED),  # the waiter closed it; the rest is settled outside qrpay
    }
)

# Orders the POS still tracks and the TTL job still watches.
OPEN_STATUSES: tuple[OrderStatus, ...] = (WAITING, IN_PROGRESS)


def status_of(ledger: Ledger) -> OrderStatus:
    """An open order's status as its payments make it."""
    if ledger.settled:
        return PAYED
    if ledger.under_way and ledger.covered:
        return IN_PROGRESS
    return WAITING


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
    # Bumped on every write: a write succeeds only against the version it read.
    version: int
    created_at: datetime
    updated_at: datetime
    # Something was paid and all of it is refunded (``Ledger.refunded_fully``): the status
    # stays PAYED, a refund-aware reader shows REFUNDED.
    refunded_fully: bool = False

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
            version=1,
            created_at=now,
            updated_at=now,
        )

    def _move(self, to: OrderStatus, now: datetime) -> Order:
        if to != self.status and (self.status, to) not in ALLOWED_MOVES:
            raise TransitionNotAllowed(f"{self.status} -> {to}")
        return replace(self, status=to, version=self.version + 1, updated_at=now)

    def with_bill(self, bill: Bill, ledger: Ledger, now: datetime) -> tuple[Order, CreateOutcome]:
        """A repeated create: the same bill is a no-op; a new one replaces it while nothing
        holds the whole of it, within what ``Ledger.replace_bill`` allows. A bill equal to
        what is paid makes the order PAYED at once."""
        if same_bill(self.bill, bill):
            return self, CreateOutcome.EXISTING
        if self.status != WAITING:
            raise Conflict(
                f"order is {self.status}: its bill can no longer change", code=EdaCode.ORDER_LOCKED
            )
        replaced = ledger.replace_bill(bill.canonical())
        changed = replace(
            self._move(status_of(replaced), now),
            bill=replaced.bill,
            bill_version=self.bill_version + 1,
        )
        return changed, CreateOutcome.BILL_REPLACED

    def check_payable(self, currency: str, bill_version: int | None) -> None:
        """Refuses a new payment of an order that is not open for one, or whose bill is not
        the one the guest saw."""
        if self.status == PAYED:
            raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
        if self.status in ENDED:
            raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
        if currency != self.bill.currency or (
            bill_version is not None and bill_version != self.bill_version
        ):
            raise Conflict("the bill has changed", code=EdaCode.BILL_CHANGED)
        if self.status == IN_PROGRESS:
            raise Conflict(
                "a payment of everything left is under way", code=EdaCode.PAYMENT_IN_PROGRESS
            )

    def settle(self, ledger: Ledger, now: datetime) -> Order:
        """A payment of this order began or moved: the status its payments make, and a new
        version (so a POS following the feed learns of each payment)."""
        if self.status in ENDED:
            moved = replace(self, version=self.version + 1, updated_at=now)
        else:
            moved = self._move(status_of(ledger), now)
        return replace(moved, refunded_fully=ledger.refunded_fully)

    def refund_changed(self, ledger: Ledger, now: datetime) -> Order:
        """A refund of one of its payments was admitted or moved: the status stays as it is
        (PAYED for every reader), whether all paid money is refunded is noted beside it,
        and the version moves, so a POS following the feed learns of it."""
        return replace(
            self,
            version=self.version + 1,
            updated_at=now,
            refunded_fully=ledger.refunded_fully,
        )

    def close(self, ledger: Ledger, now: datetime) -> Order:
        """The waiter closes the order from the POS; the rest is paid outside qrpay.

        Never while a payment is under way: its money would have no order to land on.
        """
        if self.status == CLOSED:
            return self
        if self.status == PAYED:
            raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
        if self.status == CANCELED:
            raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
        if ledger.under_way:
            raise Conflict("a payment of this order is under way", code=EdaCode.PAYMENT_IN_PROGRESS)
        return self._move(CLOSED, now)

    def expire(self, now: datetime, ttl_seconds: int) -> Order:
        """The TTL rule for one order; the job applies the same rule to many in one statement."""
        if not is_expired(self.status, self.created_at, now, ttl_seconds):
            return self
        return self._move(CANCELED, now)
