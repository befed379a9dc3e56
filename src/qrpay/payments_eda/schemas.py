"""payments-eda's contract: the payer API (SPEC 4.3), its error codes and its queue tasks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from qrpay.cardstorage.schemas import PaymentMethodId, PaymentMethodPublic
from qrpay.eda.schemas import Bill, OrderStatus, PaymentState, ShareChoice
from qrpay.kernel.schemas import AmountText, CurrencyCode, WireModel

OrderIdText = Annotated[str, StringConstraints(min_length=1, max_length=64)]

YANDEX_UID_HEADER = "X-Yandex-UID"
PHONE_ID_HEADER = "X-YaTaxi-PhoneId"
LANGUAGE_HEADER = "X-Request-Language"
POLLING_DELAY_HEADER = "X-Polling-Delay"
# One per guest tap on "pay" (the payer page keeps it across a reload while that payment is
# unfinished): a repeat with the same token and body is the same payment, never a second one.
IDEMPOTENCY_TOKEN_HEADER = "X-Idempotency-Token"  # noqa: S105 - a header name
IdempotencyToken = Annotated[
    str, StringConstraints(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]


def payment_id_for(order_id: str, token: str) -> str:
    """The payment a guest's token makes on an order: a repeat (or a caller that lost the
    answer) names the same payment without asking anyone."""
    return hashlib.sha256(f"{order_id}\n{token}".encode()).hexdigest()[:32]


PAYER_API_PREFIX = "/4.0/payments/v1"
# The longest a guest's status long-poll (``wait_ms``) waits for a change.
STATUS_WAIT_MS_MAX = 30_000
# ``wait_ms`` as the payer API reads it (its query parameter, and api-proxy to size its wait).
StatusWaitMs = Annotated[int, Field(ge=0, le=STATUS_WAIT_MS_MAX)]

# The queue payments-eda consumes, and its tasks by name (``payments_eda.tasks`` handles
# them; transactions puts ``TRANSACTION_CALLBACK`` there by these names).
TASK_QUEUE = "payments_eda_transactions"


class Task(StrEnum):
    TRANSACTION_CALLBACK = "payments_eda.transaction_callback"
    ACCRUE_CASHBACK = "payments_eda.accrue_cashback"
    # A refund part's cashback reversal that failed inline (task id ``reversal:<part>``).
    REVERSE_CASHBACK = "payments_eda.reverse_cashback"
    # Behind every refund request, until each of its parts is at transactions (task id
    # ``refund:<order>:<refund id>``, payload the request).
    SEND_REFUND = "payments_eda.send_refund"


class PaymentsCode(StrEnum):
    """The ``code`` of payments-eda's error answers (the guest's app branches on them)."""

    ORDER_NOT_FOUND = "order_not_found"
    UNAUTHORIZED = "unauthorized"
    ALREADY_PAID = "already_paid"
    ORDER_CLOSED = "order_closed"
    BILL_CHANGED = "bill_changed"
    INVALID_AMOUNT = "invalid_amount"
    PAYMENT_METHOD_UNAVAILABLE = "payment_method_unavailable"
    TRANSACTIONS_UNAVAILABLE = "transactions_unavailable"
    OPERATION_FAILED = "operation_failed"
    # A share of a split bill (issue 12): eda's codes, passed on to the guest as they are.
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    SPLIT_UNDER_WAY = "split_under_way"
    ITEM_TAKEN = "item_taken"
    SHARE_PRICE_CHANGED = "share_price_changed"
    AMOUNT_EXCEEDS_LEFT = "amount_exceeds_left"
    NOTHING_LEFT = "nothing_left"
    SHARE_NOT_FOUND = "share_not_found"
    UNKNOWN_ITEM = "unknown_item"
    INVALID_SHARE = "invalid_share"
    TIP_NOT_OFFERED = "tip_not_offered"
    INVALID_TIP = "invalid_tip"
    # The guest's idempotency token (``IDEMPOTENCY_TOKEN_HEADER``).
    IDEMPOTENCY_TOKEN_REQUIRED = "idempotency_token_required"  # noqa: S105 - a code
    IDEMPOTENCY_TOKEN_REUSED = "idempotency_token_reused"  # noqa: S105 - a code


class MessageKey(StrEnum):
    IN_PROGRESS = "in_progress"
    PAYED = "payed"
    DECLINED = "declined"
    CLOSED = "closed"
    READY = "ready"


# What the guest reads, by message or error code, in each language the app speaks.
GUEST_MESSAGES: dict[str, dict[str, str]] = {
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
    PaymentsCode.IDEMPOTENCY_TOKEN_REQUIRED: {
        "ru": "Обновите страницу и попробуйте снова",
        "en": "Reload the page and try again",
    },
    PaymentsCode.IDEMPOTENCY_TOKEN_REUSED: {
        "ru": "Этот платёж уже начат с другими данными: обновите страницу",
        "en": "This payment was started with other details: reload the page",
    },
}


class GuestStatus(StrEnum):
    WAITING = "WAITING"
    PAYED = "PAYED"
    DECLINED = "DECLINED"


class Service(StrEnum):
    RESTAURANT = "restaurant"


class RestaurantView(WireModel):
    id: str
    name: str


class CashbackView(WireModel):
    rate: Annotated[str, Field(examples=["30%"])]
    amount: Annotated[str, Field(examples=["300"])]
    currency: str


class PreorderResponse(WireModel):
    order_id: str
    status: OrderStatus
    restaurant: RestaurantView
    bill: Bill
    payment_methods: list[PaymentMethodPublic]
    cashback: CashbackView
    # Send it back with the pay request: a bill replaced meanwhile is a 409 bill_changed.
    bill_version: int


class PaymentMethodChoice(WireModel):
    type: Literal["card"]
    id: PaymentMethodId


class PayRequest(WireModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "service": "restaurant",
                    "order_id": "ord-1",
                    "hmac": "0" * 64,
                    "payment_method": {"type": "card", "id": "card-ok"},
                    "amount": "100",
                }
            ]
        },
    )

    service: Service
    order_id: OrderIdText
    hmac: Annotated[str, StringConstraints(max_length=256)]
    payment_method: PaymentMethodChoice
    amount: AmountText
    # What the guest saw besides the amount; each, when sent, must match the current bill
    # (409 bill_changed). Every client of ours sends both.
    currency: CurrencyCode | None = None
    bill_version: Annotated[int, Field(ge=1)] | None = None


class PaymentStatusResponse(WireModel):
    status: GuestStatus
    message: str
    # The payment this answer is about (absent where the order has none yet).
    payment_id: str | None = None
    # What refunds gave back of that payment, bill part and tip (absent while none did).
    refunded: str | None = None


class SharePayRequest(PayRequest):
    """A guest's share of the bill: ``amount`` is the share's price as the guest was quoted
    it, the tip apart (none, one of the restaurant's percentages, or an amount)."""

    share: ShareChoice
    tip: AmountText | None = None
    tip_percent: Annotated[int, Field(ge=1, le=100)] | None = None


class ShareStatusResponse(PaymentStatusResponse):
    share_id: str


class SplitShareView(WireModel):
    """Another guest's share as the payer page shows it: no names, no cards."""

    amount: str
    items: list[int]
    state: PaymentState


class SplitView(WireModel):
    order_id: str
    status: OrderStatus
    currency: str
    total: str
    paid: str
    held: str
    left: str
    # Lines paid or being paid by some guest: not for another to take.
    taken_items: list[int]
    tip_percents: list[int]
    shares: list[SplitShareView]


# --- refunds (issue 19, docs/refunds.md) -------------------------------------------------------

RefundId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_:-]+$")
]


# A refund's amount or tip: a plain unsigned decimal (its places are checked against the
# order's currency by eda).
RefundAmount = Annotated[
    str,
    StringConstraints(max_length=32, pattern=r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,8})?$"),
    Field(examples=["100.50"]),
]


class RefundCode(StrEnum):
    """The ``code`` of payments-eda's refund refusals (eda's decisions pass through as they are)."""

    REFUND_NOT_FOUND = "refund_not_found"
    PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    REFUND_ID_REUSED = "refund_id_reused"
    INVALID_REFUND = "invalid_refund"


class RefundSource(StrEnum):
    POS = "pos"
    SUPPORT = "support"


class RefundStatus(StrEnum):
    REFUNDING = "refunding"  # some part's outcome is still to come
    REFUNDED = "refunded"
    FAILED = "failed"
    PARTLY_FAILED = "partly_failed"


class RefundRequest(WireModel):
    order_id: OrderIdText
    # The caller's key: a repeat with it is the same refund, never a second one.
    refund_id: RefundId
    # Of the bill part, and of the tips apart; at least one positive.
    amount: RefundAmount = "0"
    tip: RefundAmount = "0"
    # One payment; without it the refund is spread over the order's payments, newest first.
    payment_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    source: RefundSource = RefundSource.POS


class RefundPart(WireModel):
    part_id: str
    payment_id: str
    amount: str
    tip: str
    state: str  # refunding | refunded | failed


class RefundView(WireModel):
    order_id: str
    refund_id: str
    status: RefundStatus
    currency: str
    amount: str
    tip: str
    parts: list[RefundPart]


# --- the support tools (issue 19): payments_eda/support.py -----------------------------


class SupportTask(WireModel):
    """One task of payments-eda's queue as procrastinate keeps it. procrastinate records
    no error text (the traceback is in the worker's log, by ``job_id``): ``last_event``
    is what happened to it last (``failed``, ``deferred_for_retry``, ``started`` ...)."""

    job_id: int
    task: str
    status: str
    attempts: int
    # The producer's task id (the queueing lock), e.g. ``cashback:<accrual key>``.
    task_id: str | None
    order_id: str | None
    payload: dict[str, object]
    scheduled_at: datetime | None
    started_at: datetime | None
    last_event: str | None
    last_event_at: datetime | None


class SupportTasks(WireModel):
    order_id: str
    # Newest first.
    tasks: list[SupportTask]


class ProblemKind(StrEnum):
    # A payment whose hold has had no outcome past hold_watchdog_seconds (eda's overdue list).
    PAYMENT_OVERDUE = "payment_overdue"
    PAYMENT_ROLLING_BACK = "payment_rolling_back"
    # A task out of tries, kept as failed: retry it (`qrpay support retry`).
    TASK_FAILED = "task_failed"
    # A task that failed and waits for its next try.
    TASK_RETRYING = "task_retrying"
    # A refund part the gateway refused for good (the guest did not get that money back).
    REFUND_FAILED = "refund_failed"
    # A refund part without an outcome past hold_watchdog_seconds.
    REFUND_STUCK = "refund_stuck"


class SupportProblem(WireModel):
    kind: ProblemKind
    order_id: str | None
    payment_id: str | None = None
    # A refund problem's part (``<refund id>.<n>``).
    refund_part_id: str | None = None
    # The payment's state (eda) or the task's status (queue).
    state: str
    # When it last changed; None for a payment (under way now).
    at: datetime | None
    task: SupportTask | None = None


class SupportProblems(WireModel):
    # Payments under way first (they are now), then tasks by their last event, newest first.
    problems: list[SupportProblem]
    # Sources that did not answer (their error code): the list lacks their problems.
    unavailable: dict[str, str]
