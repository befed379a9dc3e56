"""Three guests split one bill through real processes (`qrpay up`): items, an equal share,
the rest with a tip; each share is held and cleared on its own, cashback per share, and the
POS sees PAYED only once the bill is paid in full."""

from __future__ import annotations

import secrets
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER
from tests.support.processes import (
    QrpayUp,
    order_id_of,
)
from tests.support.tickets import as_api_proxy
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

USER = "demo-user"
PAYER = "/4.0/payments/v1"


class Guest:
    def __init__(self, up: QrpayUp, link: str) -> None:
        query = parse_qs(urlsplit(link).query)
        self.order = {"order_id": query["order_id"][0], "hmac": query["hmac"][0]}
        self.http = httpx.Client(
            base_url=up.url("payments-eda") + PAYER, headers=as_api_proxy(USER), timeout=10
        )

    def split(self) -> dict[str, Any]:
        answer = self.http.get("/orders/split", params=self.order)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def quote(self, **choice: Any) -> httpx.Response:
        return self.http.get("/orders/share/quote", params={**self.order, **choice})

    def pay(self, choice: dict[str, Any], card: str = "card-ok", **tip: Any) -> httpx.Response:
        quoted = self.quote(**choice)
        assert quoted.status_code == 200, quoted.text
        price = quoted.json()["amount"]
        body = {
            "service": "restaurant",
            **self.order,
            "payment_method": {"type": "card", "id": card},
            "amount": price,
            "currency": "RUB",
            "share": choice,
            **tip,
        }
        # One token per share, as the page makes one per tap (issue 18).
        token = {IDEMPOTENCY_TOKEN_HEADER: secrets.token_urlsafe(18)}
        return self.http.post("/orders/share", json=body, headers=token)

    def declined(self, choice: dict[str, Any]) -> str:
        started = self.pay(choice, card="card-declined")
        assert started.status_code == 200, started.text
        share_id = str(started.json()["share_id"])
        assert until(lambda: self.share_status(share_id) == "DECLINED"), share_id
        return share_id

    def share_status(self, share_id: str) -> str:
        answer = self.http.get("/orders/share", params={**self.order, "share_id": share_id})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    def pay_and_wait(self, choice: dict[str, Any], **tip: Any) -> str:
        started = self.pay(choice, **tip)
        assert started.status_code == 200, started.text
        share_id = str(started.json()["share_id"])
        assert until(lambda: self.share_status(share_id) == "PAYED"), share_id
        return share_id


def test_three_guests_split_one_bill(up: QrpayUp, tmp_path: Path) -> None:
    # The POS as in the restaurant, on the push stream: prints each payment as it lands.
    bill = ("Soup=400", "Steak=350", "Wine=250", "Tea=500")
    options = ("--push", "--timeout", "120")
    with up.waiting_pos(tmp_path, *bill, options=options) as (sim, log, link):
        split_three_ways(up, link)
        assert sim.wait(timeout=30) == 0, log.read_text()
    printed = [line for line in log.read_text().splitlines() if line.startswith("payment")]
    assert printed == [
        "payment 1: 650.00 RUB for Soup, Wine · left 850.00 RUB",
        "payment 2: 500.00 RUB · left 350.00 RUB",
        "payment 3: 350.00 RUB, tip 35.00 RUB · left 0.00 RUB",
    ]
    assert "PAID 1500.00 RUB" in log.read_text()


def split_three_ways(up: QrpayUp, link: str) -> None:
    order_id = order_id_of(link)
    guest = Guest(up, link)
    before = up.cashback_balance(USER)
    assert guest.split()["left"] == "1500.00"

    guest.pay_and_wait({"way": "items", "items": [0, 2]})  # 650
    taken = guest.quote(way="items", items=[2])
    assert (taken.status_code, taken.json()["code"]) == (409, "item_taken")
    assert up.pos_status(order_id) == "WAITING"

    # A declined card gives the share back: its item is free again, nothing is held.
    guest.declined({"way": "items", "items": [3]})
    assert guest.split()["held"] == "0.00"
    assert guest.quote(way="items", items=[3]).json()["amount"] == "500.00"

    guest.pay_and_wait({"way": "equal", "parts": 3})  # 500
    guest.pay_and_wait({"way": "rest"}, tip_percent=10)  # 350 + 35 tip

    split = guest.split()
    assert (split["status"], split["paid"], split["left"]) == ("PAYED", "1500.00", "0.00")
    # The declined share is not shown (it reserves nothing).
    assert [s["amount"] for s in split["shares"]] == ["650.00", "500.00", "350.00"]
    assert until(lambda: up.pos_status(order_id) == "PAYED")
    # 30% of each share's bill part, none of the tip, rounded down (cap 3000 not reached).
    earned = sum(
        (Decimal(a) * Decimal("0.3")).quantize(Decimal(1), ROUND_DOWN) for a in (650, 500, 350)
    )
    assert until(lambda: up.cashback_balance(USER) - before == earned), (
        up.cashback_balance(USER) - before
    )

    # A POS that reads split payments sees each one, its tip apart.
    answer = up.pos_call("/orders/payments", {"client_id": "rest-1", "orders": [order_id]})
    assert answer.status_code == 200, answer.text
    (record,) = answer.json()["orders"]
    assert (record["status"], record["paid"], record["tips"]) == ("PAYED", "1500.00", "35.00")
    assert [(p["amount"], p["tip"], p["items"]) for p in record["payments"]] == [
        ("650.00", "0.00", [0, 2]),
        ("500.00", "0.00", []),
        ("350.00", "35.00", []),
    ]


def test_the_waiter_closes_an_order_guests_paid_part_of(up: QrpayUp, tmp_path: Path) -> None:
    link = up.sell(tmp_path, "Soup=400", "Tea=100")
    order_id = order_id_of(link)
    guest = Guest(up, link)
    # The guest's CLI pays the soup with a 10% tip.
    paid = up.guest(link, "--share", "items:0", "--tip", "10%")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert "Paid 0.00 of 500.00 RUB; left 500.00 RUB" in paid.stdout
    assert "Your share: 400.00 RUB" in paid.stdout
    assert f"order {order_id}: share PAYED 400.00 RUB" in paid.stdout
    assert "Paid 400.00 of 500.00 RUB; left 100.00 RUB" in paid.stdout
    assert guest.split()["shares"][0]["items"] == [0]
    assert up.pos_status(order_id) == "WAITING"  # 100 left: the old POS keeps waiting

    closed = up.pos_call("/orders/close", {"client_id": "rest-1", "order_id": order_id})
    assert closed.status_code == 200, closed.text
    assert closed.json() == {"id": order_id, "status": "CLOSED"}
    assert until(lambda: up.pos_status(order_id) == "CLOSED")
    refused = guest.quote(way="rest")
    assert (refused.status_code, refused.json()["code"]) == (409, "order_closed")
    # The dev key may act for rest-2 too, but this order is rest-1's: it looks unknown.
    other = up.pos_call("/orders/close", {"client_id": "rest-2", "order_id": order_id})
    assert (other.status_code, other.json()["code"]) == (404, "order_not_found")
