"""cardstorage's HTTP contract. No full card number ever crosses it: a card is a token and a mask."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from qrpay.kernel.schemas import WireModel

UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PaymentMethodId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]


class CardstorageCode(StrEnum):
    """The ``code`` of cardstorage's error answers."""

    PAYMENT_METHOD_NOT_FOUND = "payment_method_not_found"
    PAYMENT_METHOD_TAKEN = "payment_method_taken"
    CARD_NUMBER_NOT_ALLOWED = "card_number_not_allowed"


class PaymentMethodType(StrEnum):
    CARD = "card"


class PaymentMethodIn(WireModel):
    """What binding a card stores: the gateway's token and what may be shown."""

    user_id: UserId
    type: PaymentMethodType = PaymentMethodType.CARD
    # The gateway's opaque token for the card (the sandbox decides outcomes by it).
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    system: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "visa"
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
    expiry_month: Annotated[int, Field(ge=1, le=12)]
    expiry_year: Annotated[int, Field(ge=2000, le=2100)]
    available: bool = True


class PaymentMethodPublic(WireModel):
    """What the guest sees."""

    id: str
    type: PaymentMethodType
    system: str
    mask: str  # "•••• 4242"
    expiry: str  # "12/30"
    available: bool


class PaymentMethodInternal(PaymentMethodPublic):
    """What payments-eda gets: the public view plus the owner and the gateway token."""

    user_id: str
    token: str


class PaymentMethodsResponse(WireModel):
    payment_methods: list[PaymentMethodPublic]
