"""payments-eda's rules, with no framework and no I/O.

- the cashback a guest earns on a bill;
- what the guest sees of an order's payment (``GuestStatus``) and in which words;
- the transaction callback decision table: given an operation's outcome and the
  payment's current state in eda, which steps come next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from qrpay.eda.schemas import OrderStatus, PaymentState
from qrpay.kernel.errors import Conflict
from qrpay.kernel.money import format_plain, round_down
from qrpay.payments_eda.schemas import GUEST_MESSAGES, GuestStatus, MessageKey, PaymentsCode
from qrpay.restaurants import CashbackRules, Restaurant
from qrpay.transactions.schemas import OperationKind, OperationStatus

OWNER = "payments-eda"


# --- cashback -------------------------------------------------------------------------------


def cashback_amount(
    bill_amount: Decimal, restaurant: Restaurant | None, rules: CashbackRules
) -> Decimal:
    """``rate%`` of the bill, rounded DOWN to ``rules.rounding_places``, capped per order.

    The restaurant's own cap wins over the default one; an unknown restaurant earns nothing.
    """
    if restaurant is None or bill_amount <= 0:
        return Decimal(0)
    raw = bill_amount * restaurant.cashback_rate / Decimal(100)
    cap = restaurant.cashback_cap if restaurant.cashback_cap is not None else rules.default_cap
    if cap is not None:
        raw = min(raw, cap)
    return round_down(raw, rules.rounding_places)


def cashback_text(amount: Decimal) -> str:
    return format_plain(amount)


def rate_text(restaurant: Restaurant | None) -> str:
    return restaurant.rate_text if restaurant is not None else "0%"


# --- what the guest sees -----------------------------------------------------------------------


@dataclass(frozen=True)
class GuestView:
    status: GuestStatus
    message: MessageKey


def guest_view(status: OrderStatus, payment: PaymentState | None) -> GuestView:
    """What the guest sees: the order's status, and the state of the payment they follow
    (theirs, or the order's latest when they name none)."""
    if payment is PaymentState.PAID or (payment is None and status is OrderStatus.PAYED):
        return GuestView(GuestStatus.PAYED, MessageKey.PAYED)
    if payment is not None and payment is not PaymentState.RELEASED:
        return GuestView(GuestStatus.WAITING, MessageKey.IN_PROGRESS)
    if status in (OrderStatus.CANCELED, OrderStatus.CLOSED):
        return GuestView(GuestStatus.DECLINED, MessageKey.CLOSED)
    if payment is PaymentState.RELEASED:
        return GuestView(GuestStatus.DECLINED, MessageKey.DECLINED)
    if status is OrderStatus.PAYED:
        return GuestView(GuestStatus.PAYED, MessageKey.PAYED)
    return GuestView(GuestStatus.WAITING, MessageKey.READY)


def language(header: str | None) -> str:
    """``X-Request-Language``: English when asked for, Russian otherwise."""
    if header and header.strip().lower().startswith("en"):
        return "en"
    return "ru"


def message(key: str, lang: str) -> str:
    texts = GUEST_MESSAGES[key]
    return texts.get(lang, texts["ru"])


def refused(code: PaymentsCode, lang: str) -> Conflict:
    """A 409 in the guest's words."""
    return Conflict(message(code, lang), code=code)


def hold_not_after(now: datetime, hold_watchdog_seconds: float) -> datetime:
    """When a hold request is too late to be taken (``OperationIn.not_after``).

    The sweep may give a payment back ``hold_watchdog_seconds`` after it began: a hold
    request still on its way by half that is refused by transactions, never taken.
    """
    return now + timedelta(seconds=hold_watchdog_seconds / 2)


class Rollback(StrEnum):
    """How a rollback ended."""

    GIVEN_BACK = "given_back"  # the hold is void: the order waits for payment again
    MOVED_ON = "moved_on"  # paid, given back or another payment's already: nothing of ours
    CLEARING = "clearing"  # the hold's clear is recorded: the clear finishes the payment
    WAITS = "waits"  # the hold's outcome (or its release) is not final yet: try again later


# --- the transaction callback decision table ----------------------------------------------------


class Step(StrEnum):
    START_UNHOLD = "start_unhold"
    FAIL_PAYMENT = "fail_payment"
    COMPLETE_PAYMENT = "complete_payment"
    ACCRUE_CASHBACK = "accrue_cashback"
    RETRY = "retry"  # raise: the queue tries the callback again later


@dataclass(frozen=True)
class Decision:
    steps: tuple[Step, ...] = ()
    # Set when the outcome is a problem order worth counting (label of qrpay_problem_orders).
    problem: str | None = None


NOTHING = Decision()
LIVE = frozenset({PaymentState.HOLDING, PaymentState.CLEARING, PaymentState.ROLLING_BACK})


def accrual_key(order_id: str, invoice_id: str) -> str:
    """Cashback keys a payment's accrual by this, once: the order's id for a whole-bill
    payment made before issue 18 (its invoice is the order's), ``<order>.<invoice>`` for
    every other, as shares always were."""
    return order_id if invoice_id == order_id else f"{order_id}.{invoice_id}"


def hold_of(kind: OperationKind, operation_id: str, target: str | None) -> str:
    """The hold (= our payment id) an operation is about: itself, or its target."""
    if kind is OperationKind.HOLD:
        return operation_id
    return target or ""


def unhold_id(hold_id: str) -> str:
    return f"{hold_id}.unhold"


def decide(kind: OperationKind, status: OperationStatus, state: PaymentState) -> Decision:
    """What to do after a transaction callback, given the payment as eda has it now.

    Every row is safe to repeat and to meet out of order: eda's payment moves are
    idempotent, and operation ids are derived from the hold's id so a repeated start is
    the same operation. Money is taken only by a captured hold's clear: transactions
    records it with the hold's success and refuses a void from then on, so exactly one of
    the clear and the rollback acts on a payment.
    """
    live = state in LIVE
    paid = state is PaymentState.PAID
    if status in (OperationStatus.PENDING, OperationStatus.CANCELED):
        return NOTHING  # not an outcome of money: a voided hold is its voider's business

    if kind is OperationKind.REFUND:
        return NOTHING  # the refund saga's (``refunds``): a refund never moves its payment

    if kind is OperationKind.HOLD:
        if status is OperationStatus.SUCCEEDED:
            # Every hold is captured: its success comes as its clear's callback. A hold's own
            # success is one made without capture (before issue 9): nothing may clear it now,
            # so it is released, and the release gives the payment back.
            if paid or state is PaymentState.CLEARING:
                return NOTHING  # its clear decides
            return Decision((Step.START_UNHOLD,))
        if live and state is not PaymentState.CLEARING:
            return Decision((Step.FAIL_PAYMENT,), problem="hold_failed")
        return NOTHING  # already given back

    if kind is OperationKind.CLEAR:
        if status is OperationStatus.SUCCEEDED:
            # DESIGN: cashback is accrued after the clear, not between hold and clear as
            # SPEC 4.4 lists it: a hold that is later released then never leaves cashback
            # behind, and cashback is only ever given for money taken.
            if live:
                return Decision((Step.COMPLETE_PAYMENT, Step.ACCRUE_CASHBACK))
            if paid:
                return Decision((Step.ACCRUE_CASHBACK,))  # a duplicate: cashback de-duplicates
            # Money taken from a payment given back: the fence makes this unreachable;
            # nothing here may undo a clear, so it is an alert for a human.
            return Decision(problem="cleared_unpaid")
        if paid:
            return NOTHING
        # The gateway refused the clear after every retry. A clear is never turned into a
        # release: the payment stays under way (nobody can pay it twice) and a human settles it.
        return Decision(problem="clear_failed")

    # UNHOLD
    if status is OperationStatus.SUCCEEDED:
        if state is PaymentState.CLEARING:
            return Decision(problem="released_while_clearing")
        if live:
            return Decision((Step.FAIL_PAYMENT,))
        return NOTHING
    if paid:
        return NOTHING
    # The hold stays on the card: try again; a task out of tries is kept as failed and counted.
    return Decision((Step.RETRY,), problem="unhold_failed")
