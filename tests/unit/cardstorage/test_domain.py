"""Showing a card (mask, expiry, availability) and refusing card numbers as tokens."""

from datetime import UTC, datetime

import pytest

from qrpay.cardstorage.domain import (
    PaymentMethod,
    check_token,
    expiry_text,
    is_expired,
    looks_like_pan,
    mask,
)
from qrpay.cardstorage.schemas import PaymentMethodType
from qrpay.kernel.errors import InvalidInput
from tests.support.component.cardstorage import card

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def method(**overrides: object) -> PaymentMethod:
    # The body component tests bind (user u1's visa), as the row it becomes.
    fields: dict[str, object] = {
        **card(),
        "id": "card-1",
        "type": PaymentMethodType.CARD,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return PaymentMethod(**fields)  # type: ignore[arg-type]


def test_mask_shows_only_the_last_four() -> None:
    assert mask("4242") == "•••• 4242"
    assert method(last4="0005").mask == "•••• 0005"


@pytest.mark.parametrize(
    ("month", "year", "text"),
    [(12, 2030, "12/30"), (1, 2026, "01/26"), (9, 2100, "09/00"), (10, 2005, "10/05")],
)
def test_expiry_is_mm_yy(month: int, year: int, text: str) -> None:
    assert expiry_text(month, year) == text


@pytest.mark.parametrize(
    ("month", "year", "expired"),
    [
        (1, 2026, False),  # valid through the end of its month
        (12, 2025, True),
        (2, 2026, False),
        (12, 2030, False),
        (6, 2020, True),
    ],
)
def test_expired_after_its_month(month: int, year: int, expired: bool) -> None:
    assert is_expired(month, year, NOW) is expired


def test_usable_needs_the_flag_and_a_valid_expiry() -> None:
    assert method().usable(NOW)
    assert not method(available=False).usable(NOW)
    assert not method(expiry_month=12, expiry_year=2025).usable(NOW)
    assert method(expiry_month=1, expiry_year=2026).usable(NOW)
    assert not method(expiry_month=1, expiry_year=2026).usable(datetime(2026, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "token",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4111111111111",  # 13 digits
        "6011000990139424123",  # 19 digits
    ],
)
def test_a_card_number_is_not_a_token(token: str) -> None:
    assert looks_like_pan(token)
    with pytest.raises(InvalidInput) as error:
        check_token(token)
    assert error.value.code == "card_number_not_allowed"
    assert token not in error.value.message
    with pytest.raises(InvalidInput):
        method(token=token)


@pytest.mark.parametrize(
    "token",
    ["tok_visa_ok", "424242424242", "42424242424242424242", "tok_4242424242424242", "abc"],
)
def test_tokens_are_accepted(token: str) -> None:
    assert not looks_like_pan(token)
    check_token(token)


def test_ownership() -> None:
    assert method().owned_by("u1")
    assert not method().owned_by("u2")
