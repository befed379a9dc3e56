"""eda's HTTP contract. Other services reach eda only through ``eda.client`` and these types."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationError

from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.schemas import STORABLE_TEXT, AmountText, Bill, CurrencyCode, WireModel

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=STORABLE_TEXT)]
InternalOrderId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=STORABLE_TEXT)
]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=STORABLE_TEXT)]
PaymentId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=STORABLE_TEXT)]


class EdaCode(StrEnum):
    """The ``code`` of eda's error answers; callers compare against these, never text."""

    ORDER_NOT_FOUND = "order_not_found"
    ORDER_BUSY = "order_busy"
    ORDER_LOCKED = "order_locked"
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    PAYMENT_NOT_STARTED = "payment_not_started"
    PAYMENT_MISMATCH = "payment_mismatch"
    ALREADY_PAID = "already_paid"
    ORDER_CLOSED = "order_closed"
    BILL_CHANGED = "bill_changed"
    # The payment's clear and its rollback exclude each other (``PaymentPhase``).
    PAYMENT_CLEARING = "payment_clearing"
    PAYMENT_ROLLING_BACK = "payment_rolling_back"
    BAD_CURSOR = "bad_cursor"
    # Shares of a split bill (``eda.split`` has the rest of their codes).
    SPLIT_UNDER_WAY = "split_under_way"
    SHARE_NOT_FOUND = "share_not_found"
    SHARE_MISMATCH = "share_mismatch"
    SHARE_PRICE_CHANGED = "share_price_changed"
    SHARE_RELEASED = "share_released"


class OrderStatus(StrEnum):
    WAITING = "WAITING"
    PAYMENT_IN_PROGRESS = "PAYMENT_IN_PROGRESS"
    PAYED = "PAYED"
    CANCELED = "CANCELED"
    # Closed by the waiter from the POS, the rest settled outside qrpay (a split bill
    # partly paid by guests, then cash for the rest).
    CLOSED = "CLOSED"


class PaymentPhase(StrEnum):
    """Where a payment under way stands; the POS sees PAYMENT_IN_PROGRESS for all three.

    The clear and the rollback each claim the payment here before they act, and each
    claim excludes the other: the order of record decides, once, whether money is taken.
    """

    HOLDING = "HOLDING"
    CLEARING = "CLEARING"
    ROLLING_BACK = "ROLLING_BACK"


class CreateOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"
    BILL_REPLACED = "bill_replaced"


class CreateOrderRequest(WireModel):
    client_id: ClientId
    internal_order_id: InternalOrderId
    bill: Bill


class OrderView(WireModel):
    order_id: str
    client_id: str
    internal_order_id: str
    status: OrderStatus
    bill: Bill
    bill_version: int
    payment_id: str | None = None
    payment_phase: PaymentPhase | None = None
    created_at: datetime
    updated_at: datetime


class CreateOrderResponse(WireModel):
    order: OrderView
    outcome: CreateOutcome


class OrdersPage(WireModel):
    # Oldest change first.
    orders: list[OrderView]


class StatusesRequest(WireModel):
    order_ids: Annotated[list[OrderId], Field(min_length=1, max_length=100)]


class OrderStatusView(WireModel):
    order_id: str
    client_id: str
    status: OrderStatus
    # The order's own version, bumped by every write: of two views of one order the higher
    # is the newer (absent from an eda older than the change feed).
    version: int | None = None


class StatusesResponse(WireModel):
    # Only the orders that exist, in no particular order.
    orders: list[OrderStatusView]


class StartPaymentRequest(WireModel):
    payment_id: PaymentId
    # What the payer saw; a different current bill is a 409 ``bill_changed``.
    amount: AmountText
    currency: CurrencyCode
    # The bill version the payer saw (absent: any version with this amount and currency).
    bill_version: int | None = None


class PaymentRef(WireModel):
    payment_id: PaymentId


class OrderChange(OrderStatusView):
    """An order's status as of its latest change, in the change feed."""

    # The transaction that wrote it: the feed's order (``eda.feed``).
    change_tx: int


class ChangesPage(WireModel):
    # In feed order; each order at most once, as of its latest change.
    changes: list[OrderChange]
    # Where to resume: the last change served, or the request's own cursor if none.
    cursor: str
    # More changes are committed already (past ``limit``, or waiting for an older
    # transaction to end): ask again now instead of waiting.
    more: bool


class FeedTail(WireModel):
    # After every change committed so far: a new follower starts here.
    cursor: str


class ShareWay(StrEnum):
    """How a guest chose their share of the bill."""

    REST = "rest"  # everything left
    EQUAL = "equal"  # one of ``parts`` equal shares
    ITEMS = "items"  # the chosen bill lines
    AMOUNT = "amount"  # an amount of the guest's choosing


class ShareState(StrEnum):
    # The hold is under way or taken; then exactly one of the clear and the rollback claims
    # it, as for a whole-bill payment. Each of these reserves the share's amount and items.
    HOLDING = "holding"
    CLEARING = "clearing"
    ROLLING_BACK = "rolling_back"
    PAID = "paid"  # cleared
    RELEASED = "released"  # given back (the hold failed or was released): reserves nothing


class ShareChoice(WireModel):
    way: ShareWay
    parts: Annotated[int, Field(ge=2, le=50)] | None = None
    items: Annotated[tuple[Annotated[int, Field(ge=0, le=499)], ...], Field(max_length=500)] = ()
    amount: AmountText | None = None


def share_choice(
    way: ShareWay, parts: int | None, items: list[int] | None, amount: str | None
) -> ShareChoice:
    """A choice from query parameters; one out of range is a 400, like a bad body."""
    try:
        return ShareChoice(way=way, parts=parts, items=tuple(items or ()), amount=amount)
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise InvalidInput(
            f"invalid share choice: {', '.join(fields)}", code="invalid_request"
        ) from None


class StartShareRequest(WireModel):
    share_id: PaymentId
    choice: ShareChoice
    # The price the guest saw for the choice: a different one now is a 409
    # ``share_price_changed`` (another guest paid meanwhile), never a silent new price.
    amount: AmountText
    tip: AmountText = "0"
    currency: CurrencyCode
    bill_version: int | None = None


class ShareRef(WireModel):
    share_id: PaymentId


class ShareView(WireModel):
    share_id: str
    amount: str
    tip: str
    items: list[int]
    state: ShareState
    created_at: datetime
    updated_at: datetime


class LedgerView(WireModel):
    """What the bill holds: its total, the shares, and what is left for the next guest."""

    order_id: str
    client_id: str
    status: OrderStatus
    currency: str
    total: str
    paid: str
    held: str
    left: str
    tips: str
    # Lines some share has paid or is paying: not for another guest to take.
    taken_items: list[int]
    shares: list[ShareView]


class QuoteView(WireModel):
    amount: str
    left: str


class ShareToCheck(WireModel):
    order_id: str
    share_id: str
    state: ShareState


class SharesToCheck(WireModel):
    shares: list[ShareToCheck]
