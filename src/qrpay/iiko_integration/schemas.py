"""iiko-integration's wire types (SPEC 4.1, 4.2)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StringConstraints

from qrpay.eda.schemas import Bill, ClientId, InternalOrderId, OrderId
from qrpay.kernel.schemas import WireModel
from qrpay.payments_eda.schemas import RefundAmount, RefundId


class IikoCode(StrEnum):
    """The ``code`` of iiko-integration's error answers (the POS branches on them)."""

    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_CLIENT = "forbidden_client"
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_RESTAURANT = "unknown_restaurant"
    RESTAURANT_DISABLED = "restaurant_disabled"
    CURRENCY_NOT_ACCEPTED = "currency_not_accepted"
    AMOUNT_TOO_LARGE = "amount_too_large"
    HMAC_KEY_MISSING = "hmac_key_missing"
    EDA_UNAVAILABLE = "eda_unavailable"
    TOO_MANY_STREAMS = "too_many_streams"
    OVERLOADED = "overloaded"
    BAD_CURSOR = "bad_cursor"


class PosStatus(StrEnum):
    WAITING = "WAITING"
    PAYED = "PAYED"
    CANCELED = "CANCELED"
    # The waiter closed it from the POS (``POST /orders/close``): the rest was paid outside.
    CLOSED = "CLOSED"
    NOT_FOUND = "NOT_FOUND"
    # Everything paid was refunded: only for a POS that asks (``refund_aware``); every other
    # reader keeps PAYED for it, as before refunds existed.
    REFUNDED = "REFUNDED"


class CreateOrderRequest(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "rest-1",
                    "internal_order_id": "iiko-42",
                    "bill": {
                        "currency": "RUB",
                        "amount": "100",
                        "elements": [{"name": "Borscht", "amount": "120"}],
                    },
                }
            ]
        }
    )

    client_id: ClientId
    internal_order_id: InternalOrderId
    bill: Bill


class BillLineType(StrEnum):
    TEXT = "text"
    QR_CODE = "qr-code"


class BillLine(WireModel):
    type: BillLineType
    value: str


class CreateOrderResponse(WireModel):
    order_id: str
    bill_lines: list[BillLine]


class ListOrdersRequest(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"client_id": "rest-1", "orders": ["ord-1", "ord-2"]}]}
    )

    client_id: ClientId
    orders: Annotated[list[OrderId], Field(min_length=1, max_length=100)]


class OrderStatusItem(WireModel):
    id: str
    status: PosStatus


class ListOrdersResponse(WireModel):
    orders: list[OrderStatusItem]


class CloseOrderRequest(WireModel):
    client_id: ClientId
    order_id: OrderId


class RefundOrderRequest(WireModel):
    """The POS refunds a paid order's guest (issue 19): one payment, or spread over the
    order's payments newest first; idempotent on ``refund_id``."""

    client_id: ClientId
    order_id: OrderId
    refund_id: RefundId
    amount: RefundAmount = "0"
    tip: RefundAmount = "0"
    payment_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class CloseOrderResponse(WireModel):
    id: str
    status: PosStatus


class PosPayment(WireModel):
    """One guest's payment of a split bill, as the POS records it."""

    id: str
    amount: str  # the bill part
    tip: str
    # Bill lines (their positions in the bill) this payment was for; none for an amount.
    items: list[int]
    paid_at: datetime
    # What refunds gave back of it (issue 19).
    refunded: str = "0"
    refunded_tip: str = "0"


class PosRefund(WireModel):
    """A part of a refund: the money it gives back of one payment, and where it stands."""

    refund_id: str
    part_id: str
    payment_id: str
    amount: str
    tip: str
    state: str  # refunding | refunded | failed
    at: datetime


class OrderPaymentsRequest(ListOrdersRequest):
    # True: an order whose paid money is all refunded is REFUNDED, not PAYED.
    refund_aware: StrictBool = False


class OrderPayments(WireModel):
    id: str
    status: PosStatus
    currency: str | None = None
    total: str | None = None
    paid: str | None = None
    tips: str | None = None
    left: str | None = None
    payments: list[PosPayment] = Field(default_factory=list)
    refunded: str | None = None
    refunded_tips: str | None = None
    refunds: list[PosRefund] = Field(default_factory=list)


class OrderPaymentsResponse(WireModel):
    orders: list[OrderPayments]


class PosChangesResponse(WireModel):
    # The restaurant's orders that changed after the request's cursor, each as of its
    # latest change, in the order they changed; empty when none did within wait_ms.
    orders: list[OrderStatusItem]
    # Where the next request resumes (after a disconnect too, on any instance).
    cursor: str


class AvailabilityResponse(WireModel):
    is_available: bool


class RestaurantItem(WireModel):
    id: str
    name: str
    cashback: Annotated[str, Field(examples=["30%"])]
    address: str | None = None


class RestaurantsResponse(WireModel):
    restaurants: list[RestaurantItem]
