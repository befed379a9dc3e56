from __future__ import annotations

import io

import pytest
from rich.console import Console

from qrpay_tools.guest.api import parse_polling_delay, parse_preorder
from qrpay_tools.guest.errors import GuestError
from qrpay_tools.guest.render import show_preorder
from tests.unit.guest.fake import ORDER_ID, preorder_body


def rendered(body: dict[str, object]) -> str:
    console = Console(file=io.StringIO(), record=True, width=100, force_terminal=False)
    show_preorder(console, parse_preorder(ORDER_ID, body))
    return console.export_text()


def test_bill_cashback_and_cards_are_shown() -> None:
    text = rendered(preorder_body())
    assert "Pushkin Café" in text
    assert "Borscht" in text
    assert "450.00" in text
    assert "1100.00 RUB" in text
    assert "Cashback: 330 RUB (30% of the bill)" in text
    for fragment in ("card-ok", "•••• 4242", "12/30", "card-declined", "card-expired"):
        assert fragment in text
    expired_row = next(line for line in text.splitlines() if "card-expired" in line)
    assert expired_row.split("│")[-2].strip() == "no"


def test_no_cards_and_no_cashback() -> None:
    text = rendered(preorder_body(payment_methods=[], cashback=None))
    assert "You have no saved cards." in text
    assert "No cashback for this order." in text


def test_a_flat_answer_is_read_too() -> None:
    flat = {
        "restaurant_name": "Teremok",
        "currency": "RUB",
        "amount": "10",
        "elements": [{"name": "Tea", "amount": "10"}],
        "payment_methods": [],
        "cashback": {"rate": "15%", "amount": "1", "currency": "RUB"},
    }
    preorder = parse_preorder(ORDER_ID, flat)
    assert (preorder.restaurant, preorder.amount, preorder.cashback) is not None
    assert preorder.restaurant == "Teremok"
    assert preorder.lines[0].name == "Tea"


@pytest.mark.parametrize("body", [[], {"bill": {"amount": "1"}}, {"bill": {"currency": "RUB"}}])
def test_an_unexpected_answer_is_one_error(body: object) -> None:
    with pytest.raises(GuestError, match=r"unexpected body|not an object"):
        parse_preorder(ORDER_ID, body)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("2", 2.0),
        ("0.5", 0.5),
        ("junk", 1.0),
        ("0", 0.05),
        ("1e9", 30.0),
        ("NaN", 1.0),
    ],
)
def test_polling_delay_header(header: str | None, seconds: float) -> None:
    assert parse_polling_delay(header) == seconds
