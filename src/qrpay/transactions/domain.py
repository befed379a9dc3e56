"""Invoices and their operations: the rules, as pure functions over the operation log.

An invoice is what is owed (the intent); each hold is an attempt at the
gateway, and clear/unhold act on one succeeded hold. Refunds give back money of a
hold whose clear succeeded, several of them if need be, never more in all (succeeded
and pending) than was cleared. Nothing here is stored as a balance: held, cleared,
released and refunded are recomputed from the operations that succeeded (events with
derived amounts). No I/O, no framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from qrpay.kernel.errors import Conflict, InvalidInput
from qrpay.kernel.money import format_amount, parse_amount
from qrpay.transactions.schemas import (
    InvoiceIn,
    OperationIn,
    OperationKind,
    OperationStatus,
    VoidOutcome,
)
from qrpay.transactions.schemas import TransactionsCode as Code

HOLD = OperationKind.HOLD
CLEAR = OperationKind.CLEAR
UNHOLD = OperationKind.UNHOLD
REFUND = OperationKind.REFUND
PENDING = OperationStatus.PENDING
SUCCEEDED = OperationStatus.SUCCEEDED
FAILED = OperationStatus.FAILED
CANCELED = OperationStatus.CANCELED


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    invoice_id: str
    owner: str
    order_id: str
    user_id: str
    currency: str
    callback_queue: str
    callback_task: str
    created_at: datetime

    def matches(self, body: InvoiceIn) -> bool:
        """A repeated PUT must describe the same invoice (the callback may differ: first wins).

        The user is not part of it: after a declined attempt another guest at the table may
        pay the same order, and the invoice then follows the payer of its next hold.
        """
        return (self.owner, self.order_id, self.currency) == (
            body.owner,
            body.order_id,
            body.currency,
        )


@dataclass(frozen=True, slots=True)
class OperationRecord:
    invoice_id: str
    operation_id: str
    kind: OperationKind
    status: OperationStatus
    amount: Decimal
    currency: str
    target: str | None
    payment_method_id: str | None
    # The gateway's token for the card (never a card number).
    token: str | None
    created_at: datetime
    reason: str | None = None
    reference: str | None = None
    attempts: int = 0
    finished_at: datetime | None = None
    callback_sent_at: datetime | None = None
    # A hold to clear in the same pass as soon as it succeeds (see ``capture_clear``).
    capture: bool = False
    # Definite refusals of this clear so far, each followed by a try under a new key
    # (``retries_refusal``); the operation stays pending meanwhile.
    refusals: int = 0

    @property
    def amount_text(self) -> str:
        return format_amount(self.amount, self.currency)

    @property
    def idempotency_key(self) -> str:
        """What the gateway de-duplicates this operation's calls by: built from our own ids.

        ``<invoice>:<operation>`` for the first try, ``<invoice>:<operation>:<n>`` for the
        n-th after refusals: a provider answers a refused key with the same refusal for ever.
        """
        key = f"{self.invoice_id}:{self.operation_id}"
        return key if self.refusals == 0 else f"{key}:{self.refusals + 1}"

    @property
    def finished(self) -> bool:
        return self.status != PENDING


@dataclass(frozen=True, slots=True)
class Amounts:
    held: Decimal
    cleared: Decimal
    released: Decimal
    refunded: Decimal


def auto_release_id(hold_id: str) -> str:
    return f"auto-release:{hold_id}"


def capture_id(hold_id: str) -> str:
    """The id of a captured hold's clear: the one an owner would give it (``<hold>.clear``)."""
    return f"{hold_id}.clear"


def capture_clear(hold: OperationRecord, now: datetime) -> OperationRecord | None:
    """The clear a hold asked for at its start, to record with its success; None otherwise.

    Recorded in the same transaction as the hold's result, under the invoice's lock: from
    then on the hold is settling, so a void answers ``hold_clearing`` and the TTL skips it.
    """
    if hold.kind != HOLD or not hold.capture or hold.status != SUCCEEDED:
        return None
    return _settlement(hold, capture_id(hold.operation_id), CLEAR, hold.amount, now)


def _settlement(
    hold: OperationRecord, operation_id: str, kind: OperationKind, amount: Decimal, now: datetime
) -> OperationRecord:
    """A pending clear, unhold or refund of ``hold``: it acts on the hold's card and gateway
    reference (the provider's payment: what a refund names, as YooKassa's ``payment_id``)."""
    return OperationRecord(
        invoice_id=hold.invoice_id,
        operation_id=operation_id,
        kind=kind,
        status=PENDING,
        amount=amount,
        currency=hold.currency,
        target=hold.operation_id,
        payment_method_id=hold.payment_method_id,
        token=hold.token,
        reference=hold.reference,
        created_at=now,
    )


def _settlements(hold: OperationRecord, ops: Iterable[OperationRecord]) -> list[OperationRecord]:
    return [o for o in ops if o.kind in (CLEAR, UNHOLD) and o.target == hold.operation_id]


def settling(hold: OperationRecord, ops: Iterable[OperationRecord]) -> OperationRecord | None:
    """The clear/unhold that has finished this hold or is finishing it now, if any."""
    for op in _settlements(hold, ops):
        if op.status in (PENDING, SUCCEEDED):
            return op
    return None


def settled_by(hold: OperationRecord, ops: Iterable[OperationRecord]) -> OperationRecord | None:
    """The clear/unhold that succeeded on this hold, if any (at most one can)."""
    for op in _settlements(hold, ops):
        if op.status == SUCCEEDED:
            return op
    return None


def refund_room(hold: OperationRecord, ops: Iterable[OperationRecord]) -> Decimal | None:
    """What may still be refunded of ``hold``: its cleared amount less its refunds that
    succeeded or may still succeed (pending); None when the hold was not cleared."""
    ops = list(ops)
    clear = settled_by(hold, ops) if hold.kind == HOLD and hold.status == SUCCEEDED else None
    if clear is None or clear.kind != CLEAR:
        return None
    taken = sum(
        (
            o.amount
            for o in ops
            if o.kind == REFUND
            and o.target == hold.operation_id
            and o.status in (PENDING, SUCCEEDED)
        ),
        Decimal(0),
    )
    return clear.amount - taken


def is_live_hold(hold: OperationRecord, ops: Sequence[OperationRecord]) -> bool:
    """Pending, or succeeded and neither cleared nor released yet."""
    if hold.kind != HOLD:
        return False
    if hold.status == PENDING:
        return True
    return hold.status == SUCCEEDED and settled_by(hold, ops) is None


def derived_amounts(ops: Sequence[OperationRecord]) -> Amounts:
    """Held, cleared, released and refunded, from the succeeded operations only.

    A cleared hold counts its clear's amount as cleared and the rest of the hold
    as released (the gateway lets the remainder go); a released hold counts
    whole as released; a succeeded hold with neither is held. Refunded is what
    succeeded refunds gave back; cleared stays what was cleared.
    """
    held = cleared = released = Decimal(0)
    refunded = sum(
        (o.amount for o in ops if o.kind == REFUND and o.status == SUCCEEDED), Decimal(0)
    )
    for hold in ops:
        if hold.kind != HOLD or hold.status != SUCCEEDED:
            continue
        done = settled_by(hold, ops)
        if done is None:
            held += hold.amount
        elif done.kind == CLEAR:
            cleared += done.amount
            released += hold.amount - done.amount
        else:
            released += hold.amount
    return Amounts(held=held, cleared=cleared, released=released, refunded=refunded)


def _same_request(existing: OperationRecord, request: OperationIn) -> bool:
    if existing.kind != request.kind or existing.target != request.target:
        return False
    if existing.capture != request.capture:
        return False
    if request.amount is not None:
        try:
            amount = parse_amount(request.amount, existing.currency)
        except InvalidInput:
            return False
        if amount != existing.amount:
            return False
    elif existing.kind in (HOLD, REFUND):
        return False
    if request.payment_method is not None and existing.kind == HOLD:
        return request.payment_method.id == existing.payment_method_id
    return True


def _positive_amount(text: str, currency: str) -> Decimal:
    value = parse_amount(text, currency)
    if value <= 0:
        raise InvalidInput("amount must be greater than zero", code=Code.AMOUNT_NOT_POSITIVE)
    return value


def decide(
    invoice: InvoiceRecord,
    ops: Sequence[OperationRecord],
    request: OperationIn,
    now: datetime,
) -> tuple[OperationRecord, bool]:
    """The operation ``request`` asks for, and whether it is new (False: an idempotent repeat).

    ``ops`` are all of the invoice's operations, read while the invoice is locked.
    """
    for op in ops:
        if op.operation_id == request.operation_id:
            if op.status == CANCELED:
                return op, False  # voided before it arrived: it never moves money
            if not _same_request(op, request):
                raise Conflict(
                    f"operation {request.operation_id!r} exists with other parameters",
                    code=Code.OPERATION_MISMATCH,
                )
            return op, False

    if request.not_after is not None and now > request.not_after:
        raise Conflict(
            f"operation {request.operation_id!r} arrived after its caller gave up on it",
            code=Code.REQUEST_EXPIRED,
        )
    currency = invoice.currency
    if request.kind == HOLD:
        if request.amount is None:
            raise InvalidInput("a hold needs an amount", code=Code.AMOUNT_REQUIRED)
        amount = _positive_amount(request.amount, currency)
        if request.payment_method is None:
            raise InvalidInput("a hold needs a payment method", code=Code.PAYMENT_METHOD_REQUIRED)
        if request.target is not None:
            raise InvalidInput("a hold has no target", code=Code.UNEXPECTED_TARGET)
        if any(is_live_hold(op, ops) for op in ops):
            raise Conflict("another hold of this invoice is live", code=Code.HOLD_ACTIVE)
        return (
            OperationRecord(
                invoice_id=invoice.invoice_id,
                operation_id=request.operation_id,
                kind=HOLD,
                status=PENDING,
                amount=amount,
                currency=currency,
                target=None,
                payment_method_id=request.payment_method.id,
                token=request.payment_method.token,
                created_at=now,
                capture=request.capture,
            ),
            True,
        )

    if request.capture:
        raise InvalidInput("only a hold can be captured", code=Code.UNEXPECTED_CAPTURE)
    if request.target is None:
        raise InvalidInput(f"a {request.kind.value} needs a target hold", code=Code.TARGET_REQUIRED)
    hold = next((op for op in ops if op.kind == HOLD and op.operation_id == request.target), None)
    if request.kind == REFUND:
        return _refund(hold, ops, request, currency, now), True
    nothing = Code.NOTHING_TO_CLEAR if request.kind == CLEAR else Code.NOTHING_TO_RELEASE
    if hold is None or hold.status != SUCCEEDED or settling(hold, ops) is not None:
        raise Conflict(
            f"no succeeded, unsettled hold {request.target!r} on this invoice", code=nothing
        )
    amount = hold.amount
    if request.amount is not None:
        amount = _positive_amount(request.amount, currency)
        if request.kind == CLEAR and amount > hold.amount:
            raise InvalidInput("cannot clear more than was held", code=Code.AMOUNT_EXCEEDS_HOLD)
        if request.kind == UNHOLD and amount != hold.amount:
            raise InvalidInput("an unhold releases the whole hold", code=Code.AMOUNT_MISMATCH)
    return _settlement(hold, request.operation_id, request.kind, amount, now), True


def _refund(
    hold: OperationRecord | None,
    ops: Sequence[OperationRecord],
    request: OperationIn,
    currency: str,
    now: datetime,
) -> OperationRecord:
    """A pending refund of the cleared hold ``hold`` (the request's target), if it fits in
    what is left of the cleared amount; ``ops`` read under the invoice's lock, so refunds
    admitted at once never add up to more than was cleared."""
    if request.amount is None:
        raise InvalidInput("a refund needs an amount", code=Code.AMOUNT_REQUIRED)
    amount = _positive_amount(request.amount, currency)
    room = None if hold is None else refund_room(hold, ops)
    if hold is None or room is None:
        raise Conflict(
            f"no cleared hold {request.target!r} on this invoice", code=Code.NOTHING_TO_REFUND
        )
    if amount > room:
        raise Conflict(
            f"refunds of hold {hold.operation_id!r} would exceed what was cleared"
            f" ({format_amount(room, currency)} left to refund)",
            code=Code.REFUND_EXCEEDS_CLEARED,
        )
    return _settlement(hold, request.operation_id, REFUND, amount, now)


def retries_refusal(op: OperationRecord, status: OperationStatus, clear_attempts: int) -> bool:
    """Whether the gateway's answer ``status`` to ``op`` is a refusal to try again later.

    Only a clear is tried again (SPEC 4.4: a failure after the hold is retried with backoff),
    and only after a definite refusal: an answer that never came leaves the key's outcome
    unknown, and that key is looked up, never replaced. Each try goes under its own key,
    ``clear_attempts`` tries in all; the clear stays pending until the last one, so the hold
    stays settling (a void answers ``hold_clearing``, the TTL leaves it alone).
    """
    return op.kind == CLEAR and status == FAILED and op.refusals + 1 < clear_attempts


def backoff_seconds(tries: int, cap_seconds: float) -> float:
    """Seconds before the next try after ``tries`` (unanswered or refused): 2, 4, 8, ... capped."""
    return min(2.0**tries, cap_seconds)


def hold_expired(
    hold: OperationRecord, ops: Sequence[OperationRecord], now: datetime, ttl_seconds: float
) -> bool:
    """A succeeded hold nobody started to clear or release within the TTL."""
    return (
        hold.kind == HOLD
        and hold.status == SUCCEEDED
        and hold.finished_at is not None
        and hold.finished_at <= now - timedelta(seconds=ttl_seconds)
        and settling(hold, ops) is None
    )


def auto_release_request(hold: OperationRecord) -> OperationIn:
    # Built without validation: the prefixed id may be longer than a caller's ids may be.
    return OperationIn.model_construct(
        operation_id=auto_release_id(hold.operation_id),
        amount=None,
        payment_method=None,
        kind=UNHOLD,
        target=hold.operation_id,
    )


@dataclass(frozen=True, slots=True)
class VoidPlan:
    """What voiding a hold takes: the outcome now, and at most one write to make it so."""

    outcome: VoidOutcome
    # A canceled record of a hold that never arrived, to insert.
    tombstone: OperationRecord | None = None
    # Cancel the pending hold, if no processor has taken it to the gateway meanwhile.
    cancel_pending: OperationRecord | None = None
    # Release the succeeded hold with this unhold.
    release: OperationIn | None = None


def plan_void(
    invoice: InvoiceRecord,
    ops: Sequence[OperationRecord],
    hold_id: str,
    release_operation_id: str,
    now: datetime,
) -> VoidPlan:
    """Make sure hold ``hold_id`` never leaves money taken; ``ops`` read under the invoice lock.

    A hold at the gateway without an answer is never guessed at: the caller asks again.
    A hold a clear is settling cannot be voided (409 ``hold_clearing``).
    """
    hold = next((op for op in ops if op.operation_id == hold_id), None)
    if hold is None:
        tombstone = OperationRecord(
            invoice_id=invoice.invoice_id,
            operation_id=hold_id,
            kind=HOLD,
            status=CANCELED,
            amount=Decimal(0),
            currency=invoice.currency,
            target=None,
            payment_method_id=None,
            token=None,
            created_at=now,
            reason="voided",
            finished_at=now,
        )
        return VoidPlan(VoidOutcome.VOIDED, tombstone=tombstone)
    if hold.kind != HOLD:
        raise Conflict(f"operation {hold_id!r} is not a hold", code=Code.OPERATION_MISMATCH)
    if hold.status == CANCELED:
        return VoidPlan(VoidOutcome.VOIDED)
    if hold.status == FAILED:
        return VoidPlan(VoidOutcome.FAILED)
    if hold.status == PENDING:
        if hold.attempts == 0:
            return VoidPlan(VoidOutcome.VOIDED, cancel_pending=hold)
        return VoidPlan(VoidOutcome.IN_FLIGHT)
    settlement = settling(hold, ops)
    if settlement is not None and settlement.kind == CLEAR:
        raise Conflict(f"hold {hold_id!r} is being cleared", code=Code.HOLD_CLEARING)
    if settlement is not None:
        if settlement.status == SUCCEEDED:
            return VoidPlan(VoidOutcome.RELEASED)
        return VoidPlan(VoidOutcome.RELEASING)
    release = OperationIn.model_construct(
        operation_id=release_operation_id,
        kind=UNHOLD,
        amount=None,
        payment_method=None,
        target=hold_id,
    )
    return VoidPlan(VoidOutcome.RELEASING, release=release)
