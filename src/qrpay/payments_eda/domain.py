"""payments-eda's rules, with no framework and no I/O.

- the cashback a guest earns on a bill;
- what the guest sees of an order's payment (``GuestStatus``) and in which words;
- the transaction callback decision table: given an operation's outcome and the
  order's current state, which steps come next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from qrpay.eda.schemas import OrderStatus, PaymentPhase
from qrpay.kernel.config import CashbackRules, Restaurant
from qrpay.kernel.errors import Conflict
from qrpay.kernel.money import format_plain, round_down
from qrpay.payments_eda.schemas import GuestStatus, PaymentsCode
from qrpay.transactions.schemas import Operation, OperationKind, OperationStatus

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


class MessageKey(StrEnum):
    IN_PROGRESS = "in_progress"
    PAYED = "payed"
    DECLINED = "declined"
    CLOSED = "closed"
    READY = "ready"


@dataclass(frozen=True)
class GuestView:
    status: GuestStatus
    message: MessageKey


def last_attempt_failed(operations: Sequence[Operation]) -> bool:
    """Whether the latest hold of an invoice ended without money: declined, or released."""
    holds = [op for op in operations if op.kind is OperationKind.HOLD]
    if not holds:
        return False
    latest = max(holds, key=lambda op: op.created_at)
    if latest.status is OperationStatus.FAILED:
        return True
    for op in operations:
        if op.target != latest.operation_id:
            continue
        if op.kind is OperationKind.UNHOLD:
            return True  # released: the attempt did not pay
        if op.kind is OperationKind.CLEAR and op.status is OperationStatus.FAILED:
            return True
    return False


def guest_view(status: OrderStatus, *, last_failed: bool) -> GuestView:
    """eda's order status (plus the invoice's last attempt) as the guest's payment status."""
    if status is OrderStatus.PAYED:
        return GuestView(GuestStatus.PAYED, MessageKey.PAYED)
    if status is OrderStatus.PAYMENT_IN_PROGRESS:
        return GuestView(GuestStatus.WAITING, MessageKey.IN_PROGRESS)
    if status in (OrderStatus.CANCELED, OrderStatus.CLOSED):
        return GuestView(GuestStatus.DECLINED, MessageKey.CLOSED)
    if last_failed:
        return GuestView(GuestStatus.DECLINED, MessageKey.DECLINED)
    return GuestView(GuestStatus.WAITING, MessageKey.READY)


def language(header: str | None) -> str:
    """``X-Request-Language``: English when asked for, Russian otherwise."""
    if header and header.strip().lower().startswith("en"):
        return "en"
    return "ru"


MESSAGES: dict[str, dict[str, str]] = {
    MessageKey.IN_PROGRESS: {
        "ru": "Платёж обрабатывается",
        "en": "The payment is being processed",
    },
    MessageKey.PAYED: {
        "ru": "Оплачено, кэшбэк скоро придёт",
        "en": "Paid; cashback will arrive soon",
    },
    MessageKey.DECLINED: {
        "ru": "Платёж не прошёл: попробуйте другую карту или оплатите в ресторане",
        "en": "The payment was declined: try another card or pay at the restaurant",
    },
    MessageKey.CLOSED: {
        "ru": "Заказ закрыт: оплатите его в ресторане",
        "en": "The order is closed: please pay at the restaurant",
    },
    MessageKey.READY: {
        "ru": "Заказ ждёт оплаты",
        "en": "The order is waiting for payment",
    },
    # Error codes the guest may see.
    PaymentsCode.ORDER_NOT_FOUND: {"ru": "Заказ не найден", "en": "Order not found"},
    PaymentsCode.UNAUTHORIZED: {
        "ru": "Войдите в приложение, чтобы оплатить",
        "en": "Sign in to pay",
    },
    PaymentsCode.ALREADY_PAID: {"ru": "Заказ уже оплачен", "en": "The order is already paid"},
    PaymentsCode.ORDER_CLOSED: {
        "ru": "Заказ закрыт: оплатите его в ресторане",
        "en": "The order is closed: please pay at the restaurant",
    },
    PaymentsCode.BILL_CHANGED: {
        "ru": "Счёт изменился: откройте его заново",
        "en": "The bill has changed: open it again",
    },
    PaymentsCode.PAYMENT_METHOD_UNAVAILABLE: {
        "ru": "Этот способ оплаты недоступен",
        "en": "This payment method is not available",
    },
    PaymentsCode.INVALID_AMOUNT: {"ru": "Неверная сумма", "en": "The amount is not valid"},
    PaymentsCode.PAYMENT_IN_PROGRESS: {
        "ru": "Счёт сейчас оплачивают целиком",
        "en": "Someone is paying the whole bill right now",
    },
    PaymentsCode.SPLIT_UNDER_WAY: {
        "ru": "Гости делят этот счёт: выберите свою часть",
        "en": "Guests are splitting this bill: choose your share",
    },
    PaymentsCode.ITEM_TAKEN: {
        "ru": "Эту позицию уже оплачивает другой гость",
        "en": "Another guest has this item",
    },
    PaymentsCode.SHARE_PRICE_CHANGED: {
        "ru": "Пока вы выбирали, другой гость оплатил часть счёта: проверьте сумму",
        "en": "Another guest paid meanwhile: check your amount",
    },
    PaymentsCode.AMOUNT_EXCEEDS_LEFT: {
        "ru": "Сумма больше остатка по счёту",
        "en": "That is more than what is left to pay",
    },
    PaymentsCode.NOTHING_LEFT: {
        "ru": "Счёт уже оплачен или оплачивается",
        "en": "Nothing is left to pay on this bill",
    },
    PaymentsCode.UNKNOWN_ITEM: {
        "ru": "Такой позиции нет в счёте",
        "en": "That item is not on the bill",
    },
    PaymentsCode.INVALID_SHARE: {
        "ru": "Счёт можно разделить на 2–50 частей",
        "en": "A bill splits into 2 to 50 parts",
    },
    PaymentsCode.SHARE_NOT_FOUND: {"ru": "Платёж не найден", "en": "Payment not found"},
    PaymentsCode.TIP_NOT_OFFERED: {
        "ru": "Такой процент чаевых недоступен",
        "en": "That tip percentage is not offered",
    },
    PaymentsCode.INVALID_TIP: {"ru": "Неверная сумма чаевых", "en": "The tip is not valid"},
}


def message(key: str, lang: str) -> str:
    texts = MESSAGES[key]
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
    # Take the order's clear claim in eda first: a conflict raises and the retry decides anew.
    CLAIM_CLEAR = "claim_clear"
    START_CLEAR = "start_clear"
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


def hold_of(kind: OperationKind, operation_id: str, target: str | None) -> str:
    """The hold (= our payment_id) an operation is about: itself, or its target."""
    if kind is OperationKind.HOLD:
        return operation_id
    return target or ""


def clear_id(hold_id: str) -> str:
    return f"{hold_id}.clear"


def unhold_id(hold_id: str) -> str:
    return f"{hold_id}.unhold"


def decide(
    kind: OperationKind,
    status: OperationStatus,
    *,
    hold_id: str,
    order_status: OrderStatus,
    order_payment_id: str | None,
    order_phase: PaymentPhase | None = None,
) -> Decision:
    """What to do after a transaction callback, given the order as eda has it now.

    Every row is safe to repeat and to meet out of order: eda's payment transitions
    are idempotent on the payment id, and operation ids are derived from the hold's id
    so a repeated start is the same operation. Money is taken only by a clear that is
    fenced against the rollback: a captured hold's clear (pay asks for it; transactions
    records it with the hold's success, and refuses a void from then on), or an
    owner-started clear that claimed the order in eda first (``CLAIM_CLEAR``, for a hold
    started without capture). Exactly one of the clear and the rollback acts on a payment.
    """
    ours = order_payment_id == hold_id
    in_progress = ours and order_status is OrderStatus.PAYMENT_IN_PROGRESS
    clearing = in_progress and order_phase is PaymentPhase.CLEARING
    paid = ours and order_status is OrderStatus.PAYED
    if status in (OperationStatus.PENDING, OperationStatus.CANCELED):
        return NOTHING  # not an outcome of money: a voided hold is its voider's business

    if kind is OperationKind.HOLD:
        if status is OperationStatus.SUCCEEDED:
            if clearing:
                return Decision((Step.START_CLEAR,))  # claimed before: the same clear again
            if in_progress and order_phase is not PaymentPhase.ROLLING_BACK:
                return Decision((Step.CLAIM_CLEAR, Step.START_CLEAR))
            if paid:
                return NOTHING  # the clear already went through: a late duplicate
            # Rolling back, rolled back (the watchdog fired), canceled or another payment:
            # a hold that completes on an order that is not waiting for it is released.
            return Decision((Step.START_UNHOLD,))
        if in_progress and not clearing:
            return Decision((Step.FAIL_PAYMENT,), problem="hold_failed")
        return NOTHING  # already rolled back

    if kind is OperationKind.CLEAR:
        if status is OperationStatus.SUCCEEDED:
            # DESIGN: cashback is accrued after the clear, not between hold and clear as
            # SPEC 4.4 lists it: a hold that is later released then never leaves cashback
            # behind, and cashback is only ever given for a paid order.
            if in_progress:
                # Claimed in eda first, or a captured hold's clear (fenced in transactions: a
                # rollback's void of it is refused, so a ROLLING_BACK order yields to it).
                return Decision((Step.COMPLETE_PAYMENT, Step.ACCRUE_CASHBACK))
            if paid:
                return Decision((Step.ACCRUE_CASHBACK,))  # a duplicate: cashback de-duplicates
            # Money taken from an order given back: both fences make this unreachable;
            # nothing here may undo a clear, so it is an alert for a human.
            return Decision(problem="cleared_unpaid")
        if paid:
            return NOTHING
        # The gateway refused the clear for good. A clear is never turned into a release:
        # the order stays claimed (nobody can pay it twice) and a human settles it.
        return Decision(problem="clear_failed")

    # UNHOLD
    if status is OperationStatus.SUCCEEDED:
        if clearing:
            return Decision(problem="released_while_clearing")
        if in_progress:
            return Decision((Step.FAIL_PAYMENT,))
        return NOTHING
    if paid:
        return NOTHING
    # The hold stays on the card: try again; a task out of tries is kept as failed and counted.
    return Decision((Step.RETRY,), problem="unhold_failed")
