"""A saved payment method and the rules for showing it.

Pure: no I/O, no framework. A card is only ever a gateway token plus what may
be shown (system, last four digits, expiry); ``check_token`` refuses anything
that looks like a full card number, so one can never be stored by mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from qrpay.cardstorage.schemas import CardstorageCode, PaymentMethodType
from qrpay.kernel.errors import InvalidInput

MASK_PREFIX = "•••• "

# A PAN is 13 to 19 digits; people and tools write it with spaces or dashes.
_PAN_RE = re.compile(r"^[0-9]{13,19}$")
_PAN_SEPARATORS = re.compile(r"[ -]")


def looks_like_pan(token: str) -> bool:
    return _PAN_RE.match(_PAN_SEPARATORS.sub("", token)) is not None


def check_token(token: str) -> None:
    """Refuse a token that is a card number. The message never repeats the token."""
    if looks_like_pan(token):
        raise InvalidInput(
            "the token looks like a card number; send the gateway's token, never the number",
            code=CardstorageCode.CARD_NUMBER_NOT_ALLOWED,
        )


def mask(last4: str) -> str:
    return f"{MASK_PREFIX}{last4}"


def expiry_text(month: int, year: int) -> str:
    """``MM/YY``: ``12/30``."""
    return f"{month:02d}/{year % 100:02d}"


def is_expired(month: int, year: int, now: datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (now.year, now.month) > (year, month)


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    user_id: str
    type: PaymentMethodType
    token: str
    system: str
    last4: str
    expiry_month: int
    expiry_year: int
    # The stored flag (e.g. the bank blocked the card); see ``usable`` for the shown one.
    available: bool
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        check_token(self.token)

    @property
    def mask(self) -> str:
        return mask(self.last4)

    @property
    def expiry(self) -> str:
        return expiry_text(self.expiry_month, self.expiry_year)

    def usable(self, now: datetime) -> bool:
        return self.available and not is_expired(self.expiry_month, self.expiry_year, now)

    def owned_by(self, user_id: str) -> bool:
        return self.user_id == user_id
