"""The whole payment, as the restaurant and the guest run it: `qrpay up`, `pos-sim`, `qrpay guest`.

Real processes on free ports in a temporary data directory; the sandbox gateway
decides by card: card-ok pays, card-declined is declined (insufficient funds).
"""

from __future__ import annotations

import subprocess
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qrpay.runner.registry import SERVICE_MODULES
from tests.support.processes import (
    QrpayUp,
    order_id_of,
)
from tests.support.tickets import ticket_headers

pytestmark = pytest.mark.e2e

USER = "demo-user"


def cashback_for(amount: str) -> Decimal:
    """rest-1: 30%, capped at 3000 per order, rounded down to whole roubles (dev config)."""
    return min((Decimal(amount) * Decimal("0.30")).quantize(Decimal(1), ROUND_DOWN), Decimal(3000))


def new_order(up: QrpayUp, tmp_path: Path, amount: str) -> str:
    return up.sell(tmp_path, f"Dinner={amount}")


def guest(up: QrpayUp, link: str, card: str) -> subprocess.CompletedProcess[str]:
    return up.guest(link, "--timeout", "30", card=card)


def guest_status(up: QrpayUp, link: str) -> str:
    query = parse_qs(urlsplit(link).query)
    answer = httpx.get(
        f"{up.url('payments-eda')}/4.0/payments/v1/orders",
        params={"order_id": query["order_id"][0], "hmac": query["hmac"][0]},
        headers={
            "X-Yandex-UID": USER,
            **ticket_headers(to="payments-eda"),
        },  # as the guest CLI calls
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert "X-Polling-Delay" in answer.headers
    return str(answer.json()["status"])


def test_guest_pays_the_pos_sees_payed_and_cashback_arrives(up: QrpayUp, tmp_path: Path) -> None:
    # The POS as in the restaurant: prints the bill and waits for the payment.
    options = ("--poll-interval", "0.2", "--timeout", "60")
    bill = ("Borscht=450.50", "Pelmeni=784.06")
    with up.waiting_pos(tmp_path, *bill, options=options) as (sim, log, link):
        order_id = order_id_of(link)
        before = up.cashback_balance(USER)

        paid = guest(up, link, "card-ok")
        assert paid.returncode == 0, paid.stdout + paid.stderr
        assert f"order {order_id}: PAYED 1234.56 RUB" in paid.stdout
        assert "Cashback: 370 RUB (30% of the bill)" in paid.stdout
        assert "Cashback balance:" in paid.stdout
        assert paid.stderr == ""

        assert sim.wait(timeout=30) == 0, log.read_text()
        assert f"order {order_id}: PAID 1234.56 RUB" in log.read_text()
    assert guest_status(up, link) == "PAYED"
    assert up.pos_status(order_id) == "PAYED"
    assert up.cashback_balance(USER) - before == cashback_for("1234.56") == Decimal(370)

    # Above the cap: 30% of 12000 is 3600, the restaurant's cap is 3000.
    big = new_order(up, tmp_path, "12000")
    before = up.cashback_balance(USER)
    paid = guest(up, big, "card-ok")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert up.cashback_balance(USER) - before == cashback_for("12000") == Decimal(3000)

    # Paying again is refused and changes nothing.
    again = guest(up, link, "card-ok")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "already paid" in again.stdout
    assert up.cashback_balance(USER) - before == Decimal(3000)

    assert up.stop() == 0, up.output()
    assert "Traceback" not in up.output()


def test_internal_routes_want_a_service_ticket_of_an_allowed_caller(
    up: QrpayUp, tmp_path: Path
) -> None:
    """Black box against `qrpay up` (issue 11): before, anyone on the network read card
    tokens and paid as any user."""
    link = new_order(up, tmp_path, "100")
    query = parse_qs(urlsplit(link).query)
    status = f"{up.url('payments-eda')}/4.0/payments/v1/orders"
    params = {"order_id": query["order_id"][0], "hmac": query["hmac"][0]}
    token = f"{up.url('cardstorage')}/v1/payment-methods/card-ok"
    for url, query_params, allowed, service in (
        (status, params, "api-proxy", "payments-eda"),
        (token, {"user_id": USER}, "payments-eda", "cardstorage"),
    ):
        bare = httpx.get(url, params=query_params, headers={"X-Yandex-UID": USER}, timeout=5)
        assert bare.status_code == 401, bare.text
        assert bare.json()["code"] == "service_ticket_invalid"
        wrong = httpx.get(
            url, params=query_params, headers=ticket_headers("eda", to=service), timeout=5
        )
        assert wrong.status_code == 403, wrong.text
        assert wrong.json()["code"] == "service_not_allowed"
        right = httpx.get(
            url, params=query_params, headers=ticket_headers(allowed, to=service), timeout=5
        )
        assert right.status_code == 200, right.text
    metrics = httpx.get(f"{up.url('cardstorage')}/metrics", timeout=5).text
    refused = {
        (sample.labels["caller"], sample.labels["reason"])
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "qrpay_service_ticket_refusals_total"
    }
    assert refused == {("unknown", "missing"), ("eda", "not_allowed")}


def test_declined_card_leaves_the_order_open_and_another_card_pays(
    up: QrpayUp, tmp_path: Path
) -> None:
    link = new_order(up, tmp_path, "500")
    order_id = order_id_of(link)
    before = up.cashback_balance(USER)

    declined = guest(up, link, "card-declined")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert f"order {order_id}: DECLINED" in declined.stdout
    assert guest_status(up, link) == "DECLINED"
    assert up.pos_status(order_id) == "WAITING"
    assert up.cashback_balance(USER) == before

    paid = guest(up, link, "card-ok")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert guest_status(up, link) == "PAYED"
    assert up.pos_status(order_id) == "PAYED"
    assert up.cashback_balance(USER) - before == Decimal(150)


def test_an_unpaid_order_is_canceled_after_its_ttl_and_cannot_be_paid(tmp_path: Path) -> None:
    up = QrpayUp(
        tmp_path / "var",
        tmp_path / "up.log",
        config={"orders": {"ttl_seconds": 2, "ttl_check_interval_seconds": 0.5}},
    )
    try:
        up.start(SERVICE_MODULES)
        link = new_order(up, tmp_path, "300")
        order_id = order_id_of(link)
        deadline = time.monotonic() + 20
        while up.pos_status(order_id) != "CANCELED":
            assert time.monotonic() < deadline, "the order was not canceled after its TTL"
            time.sleep(0.25)

        query = parse_qs(urlsplit(link).query)
        answer = httpx.post(
            f"{up.url('payments-eda')}/4.0/payments/v1/orders",
            json={
                "service": "restaurant",
                "order_id": order_id,
                "hmac": query["hmac"][0],
                "payment_method": {"type": "card", "id": "card-ok"},
                "amount": "300.00",
            },
            headers={"X-Yandex-UID": USER, **ticket_headers(to="payments-eda")},
            timeout=5,
        )
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "order_closed"

        refused = guest(up, link, "card-ok")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert up.pos_status(order_id) == "CANCELED"
    finally:
        up.kill()


def test_the_guests_long_poll_is_woken_by_eda_s_feed(tmp_path: Path) -> None:
    """Issue 22: polls at most every 60 s and a long-poll of 30 s: only a wake from
    payments-eda's follower of eda's feed answers PAYED within that long-poll (without it,
    the long-poll ends at 30 s with WAITING)."""
    up = QrpayUp(
        tmp_path / "var",
        tmp_path / "up.log",
        config={"payments": {"polling_delay_seconds": "60"}},
    )
    try:
        up.start(SERVICE_MODULES)
        query = parse_qs(urlsplit(new_order(up, tmp_path, "500")).query)
        order = {"order_id": query["order_id"][0], "hmac": query["hmac"][0]}
        api = f"{up.url('payments-eda')}/4.0/payments/v1"
        headers = {"X-Yandex-UID": USER, **ticket_headers(to="payments-eda")}
        with httpx.Client(headers=headers, timeout=60) as client:
            preorder = client.get(f"{api}/preorder", params={**order, "service": "restaurant"})
            assert preorder.status_code == 200, preorder.text
            bill = preorder.json()["bill"]
            pay = client.post(
                f"{api}/orders",
                json={
                    "service": "restaurant",
                    **order,
                    "payment_method": {"type": "card", "id": "card-ok"},
                    "amount": bill["amount"],
                    "currency": bill["currency"],
                    "bill_version": preorder.json()["bill_version"],
                },
            )
            assert pay.status_code == 200, pay.text
            # The hold is cleared by the queue's callback, after the pay's answer.
            assert pay.json()["status"] == "WAITING", pay.text
            status = client.get(f"{api}/orders", params={**order, "wait_ms": "30000"})
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "PAYED", status.text
    finally:
        up.kill()
