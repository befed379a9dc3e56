"""payments-eda's wire types: the payer API (SPEC 4.3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from qrpay.cardstorage.schemas import PaymentMethodId, PaymentMethodPublic
from qrpay.eda.schemas import OrderStatus
from qrpay.kernel.schemas import AmountText, Bill, WireModel
from qrpay.payments_eda.domain import GuestStatus

OrderIdText = Annotated[str, StringConstraints(min_length=1, max_length=64)]

YANDEX_UID_HEADER = "X-Yandex-UID"
PHONE_ID_HEADER = "X-YaTaxi-PhoneId"
LANGUAGE_HEADER = "X-Request-Language"
POLLING_DELAY_HEADER = "X-Polling-Delay"


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


class PaymentStatusResponse(WireModel):
    status: GuestStatus
    message: str
