"""eda's HTTP contract. Other services reach eda only through ``eda.client`` and these types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationError, model_validator

from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import format_amount
from qrpay.kernel.schemas import (
    STORABLE_TEXT,
    AmountText,
    CurrencyCode,
    WireModel,
    check_amount,
    check_positive_amount,
)

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=STORABLE_TEXT)]
InternalOrderId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=STORABLE_TEXT)
]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=STORABLE_TEXT)]
PaymentId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=STORABLE_TEXT)]
# A refund's id, the caller's; its parts are ``<refund_id>.<n>``, which go into a path.
RefundId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
]


class BillElement(WireModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=STORABLE_TEXT)]
    amount: AmountText


class Bill(WireModel):
    currency: CurrencyCode
    amount: AmountText
    elements: Annotated[list[BillElement], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _amounts_fit_currency(self) -> Bill:
        check_positive_amount(self.amount, self.currency)
        for element in self.elements:
            # A discount line may be negative.
            check_amount(element.amount, self.currency, allow_negative=True, positive=False)
        return self

    @property
    def total(self) -> Decimal:
        return Decimal(self.amount)

    def canonical(self) -> Bill:
        """The same bill with amounts printed one way, so equal bills compare equal."""
        return Bill(
            currency=self.currency,
            amount=format_amount(Decimal(self.amount), self.currency),
            elements=[
                BillElement(name=e.name, amount=format_amount(Decimal(e.amount), self.currency))
                for e in self.elements
            ],
        )


@dataclass(frozen=True, order=True, slots=True)
class FeedCursor:
    """A position in eda's change feed (``<change_tx>:<order_id>``): changes with a greater
    key come after it. Its one text form and its one parser, for eda and its followers."""

    change_tx: int
    order_id: str

    def text(self) -> str:
        return f"{self.change_tx}:{self.order_id}"


def parse_feed_cursor(text: str) -> FeedCursor | None:
    """The cursor ``text`` names; None when it is not one (each caller answers 400 its way).
    -1 is before every change (rows from before the feed existed have 0)."""
    tx, sep, order_id = text.partition(":")
    try:
        number = int(tx)
    except ValueError:
        return None
    if not sep or number < -1:
        return None
    return FeedCursor(number, order_id)


class EdaCode(StrEnum):
    """The ``code`` of eda's error answers; callers compare against these, never text."""

    ORDER_NOT_FOUND = "order_not_found"
    ORDER_BUSY = "order_busy"
    ORDER_LOCKED = "order_locked"
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    ALREADY_PAID = "already_paid"
    ORDER_CLOSED = "order_closed"
    BILL_CHANGED = "bill_changed"
    BAD_CURSOR = "bad_cursor"
    # A payment's moves (``eda.ledger``).
    PAYMENT_NOT_FOUND = "payment_not_found"
    PAYMENT_CLEARING = "payment_clearing"
    PAYMENT_ROLLING_BACK = "payment_rolling_back"
    PAYMENT_RELEASED = "payment_released"
    SHARE_PRICE_CHANGED = "share_price_changed"
    # The same payment id (the guest's token) came with another request.
    IDEMPOTENCY_TOKEN_REUSED = "idempotency_token_reused"  # noqa: S105 - a code
    # Refunds of payments (``eda.refunds``, issue 19).
    PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    INVALID_REFUND_AMOUNT = "invalid_refund_amount"
    REFUND_ID_REUSED = "refund_id_reused"
    REFUND_NOT_FOUND = "refund_not_found"
    REFUND_MOVE_REFUSED = "refund_move_refused"


class LedgerCode(StrEnum):
    """eda's refusals of a guest's choice, decided by ``eda.ledger``."""

    NOTHING_LEFT = "nothing_left"
    AMOUNT_EXCEEDS_LEFT = "amount_exceeds_left"
    ITEM_TAKEN = "item_taken"
    UNKNOWN_ITEM = "unknown_item"
    ITEM_NOT_PAYABLE = "item_not_payable"
    INVALID_PARTS = "invalid_parts"
    INVALID_SHARE_AMOUNT = "invalid_share_amount"
    BILL_BELOW_PAID = "bill_below_paid"
    TAKEN_ITEM_CHANGED = "taken_item_changed"
    CURRENCY_LOCKED = "currency_locked"


class OrderStatus(StrEnum):
    WAITING = "WAITING"
    PAYMENT_IN_PROGRESS = "PAYMENT_IN_PROGRESS"
    PAYED = "PAYED"
    CANCELED = "CANCELED"
    # Closed by the waiter from the POS, the rest settled outside qrpay (a split bill
    # partly paid by guests, then cash for the rest).
    CLOSED = "CLOSED"


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
    # Something was paid and all of it is refunded (issue 19). The status stays PAYED;
    # a refund-aware reader shows REFUNDED. Absent from an eda older than refunds.
    refunded_fully: bool = False


class StatusesResponse(WireModel):
    # Only the orders that exist, in no particular order.
    orders: list[OrderStatusView]


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
    """How a guest chose their share of the bill; paying the whole bill is ``REST``."""

    REST = "rest"  # everything left
    EQUAL = "equal"  # one of ``parts`` equal shares
    ITEMS = "items"  # the chosen bill lines
    AMOUNT = "amount"  # an amount of the guest's choosing


class PaymentState(StrEnum):
    # The hold is under way or taken; then exactly one of the clear and the rollback acts
    # on it. Each of these reserves the payment's amount and items.
    HOLDING = "holding"
    # Only payments made before issue 18: an owner-started clear claimed them.
    CLEARING = "clearing"
    ROLLING_BACK = "rolling_back"
    PAID = "paid"  # cleared
    RELEASED = "released"  # given back (the hold failed or was released): reserves nothing


class RefundState(StrEnum):
    """A refund part's state: ``refunding`` reserves its amount and tip of the payment."""

    REFUNDING = "refunding"
    REFUNDED = "refunded"
    FAILED = "failed"  # refused for good: gives the reservation back


class ShareChoice(WireModel):
    way: ShareWay
    parts: Annotated[int, Field(ge=2, le=50)] | None = None
    # Only with ``way: items``; each index is checked against the bill when it is admitted.
    items: Annotated[tuple[Annotated[int, Field(ge=0, le=499)], ...], Field(max_length=500)] = ()
    amount: AmountText | None = None

    @model_validator(mode="after")
    def _items_only_for_items(self) -> ShareChoice:
        if self.items and self.way is not ShareWay.ITEMS:
            raise ValueError("items are chosen only with way: items")
        return self


def share_choice(
    way: ShareWay, parts: int | None, items: list[int] | None, amount: str | None
) -> ShareChoice:
    """A choice from query parameters; one out of range is a 400, like a bad body."""
    try:
        return ShareChoice(way=way, parts=parts, items=tuple(items or ()), amount=amount)
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise InvalidInput(
            f"invalid share choice: {', '.join(fields) or 'items'}", code="invalid_request"
        ) from None


class StartPaymentRequest(WireModel):
    payment_id: PaymentId
    choice: ShareChoice
    # The price the guest saw for the choice: a different one now is a 409
    # ``share_price_changed`` (another guest paid meanwhile), never a silent new price.
    amount: AmountText
    tip: AmountText = "0"
    currency: CurrencyCode
    bill_version: int | None = None
    # The guest's idempotency token and a digest of what they asked for: the same token
    # again is the same payment; with another digest, 409 ``idempotency_token_reused``.
    token: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    request_hash: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class PaymentRef(WireModel):
    payment_id: PaymentId


class PaymentView(WireModel):
    payment_id: str
    # The payment's invoice in transactions (the order's for a whole-bill payment made
    # before issue 18, the payment's own since).
    invoice_id: str
    amount: str
    tip: str
    items: list[int]
    state: PaymentState
    # 1, 2, ... in the order the order's payments cleared; None until paid.
    paid_seq: int | None = None
    created_at: datetime
    updated_at: datetime
    # What refunds gave back of it (succeeded refund parts; issue 19).
    refunded: str = "0"
    refunded_tip: str = "0"


class RefundPartView(WireModel):
    """One part of a refund: the money it gives back of one payment."""

    part_id: str  # "<refund_id>.<n>"
    refund_id: str
    payment_id: str
    # The payment's invoice in transactions: where the refund operation goes.
    invoice_id: str
    amount: str
    tip: str
    state: RefundState
    created_at: datetime
    updated_at: datetime


class LedgerView(WireModel):
    """What the bill holds: its total, the payments, and what is left for the next guest."""

    order_id: str
    client_id: str
    status: OrderStatus
    currency: str
    total: str
    paid: str
    held: str
    left: str
    tips: str
    # Lines some payment has paid or is paying: not for another guest to take.
    taken_items: list[int]
    payments: list[PaymentView]
    # Given back by succeeded refund parts (``paid`` and ``tips`` stay what was paid).
    refunded: str = "0"
    refunded_tips: str = "0"
    # Something was paid and all of it (amounts and tips) is refunded. The status stays
    # PAYED; a refund-aware reader shows REFUNDED.
    refunded_fully: bool = False
    # Every refund part of the order, in the order they were made.
    refunds: list[RefundPartView] = Field(default_factory=list)


class StartedPayment(LedgerView):
    """The ledger after a start, and whether this start repeated an earlier one."""

    payment_id: str
    replayed: bool


class RefundRequest(WireModel):
    """A refund of ``amount`` (of the bill) and ``tip``, of one payment or spread over the
    paid ones, newest paid first. The same ``refund_id`` again with the same request
    answers the parts made for it; with another, 409 ``refund_id_reused``."""

    refund_id: RefundId
    amount: AmountText
    tip: AmountText = "0"
    payment_id: PaymentId | None = None
    # The order's currency, if the caller names it: another one is refused (400).
    currency: CurrencyCode | None = None
    # The caller's digest of its own request, part of what makes a repeat the same.
    request_hash: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class RefundAnswer(LedgerView):
    """The ledger after a refund was admitted (or replayed), and this refund's parts."""

    refund_id: str
    replayed: bool
    parts: list[RefundPartView]


class RefundMoved(LedgerView):
    """The ledger after a refund part's outcome, and that part as it stands."""

    part: RefundPartView


class QuoteView(WireModel):
    amount: str
    left: str


class PaymentToCheck(WireModel):
    order_id: str
    payment_id: str
    invoice_id: str
    state: PaymentState


class RefundProblem(WireModel):
    """A refund part refused for good, or one without an outcome for a while."""

    order_id: str
    part_id: str
    refund_id: str
    payment_id: str
    amount: str
    tip: str
    state: RefundState
    updated_at: datetime


class RefundProblems(WireModel):
    # Newest change first.
    refunds: list[RefundProblem]


class PaymentsToCheck(WireModel):
    payments: list[PaymentToCheck]
    # Pass it as ``after`` for the next page; None on the last one.
    next: str | None = None
