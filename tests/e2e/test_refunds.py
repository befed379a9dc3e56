"""Refunds through real processes (`qrpay up`, issue 19): the POS refunds a guest with
`qrpay-tools pos-refund`, part and then the rest spread over the order's payments; the
cashback is taken back in proportion; the guest sees what came back; an on-call engineer
looks at the order across services with `qrpay support`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.processes import (
    QRPAY,
    QRPAY_TOOLS,
    QrpayUp,
    child_env,
    order_id_of,
    run,
)
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

USER = "demo-user"


def guest(up: QrpayUp, link: str, *args: str) -> str:
    done = up.guest(link, *args)
    return done.stdout + done.stderr


def pos_refund(up: QrpayUp, order_id: str, *args: str) -> tuple[int, str]:
    done = run(
        [QRPAY_TOOLS, "pos-refund", order_id, "--url", up.url("iiko-integration"), *args],
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def support(up: QrpayUp, *args: str) -> tuple[int, str]:
    env = {**child_env(), "QRPAY_ENVIRONMENT": "development"}
    done = run([QRPAY, "support", *args, "--config", str(up.data_dir / "config.yaml")], env=env)
    return done.returncode, done.stdout + done.stderr


def test_the_pos_refunds_a_guest_and_support_sees_it(up: QrpayUp, tmp_path: Path) -> None:
    link = up.sell(tmp_path, "Soup=400", "Tea=100")
    order_id = order_id_of(link)
    before = up.cashback_balance(USER)
    # Two guests: the soup with a 10% tip, then the rest.
    assert "share PAYED 400.00 RUB" in guest(up, link, "--share", "items:0", "--tip", "10%")
    assert "share PAYED 100.00 RUB" in guest(up, link, "--share", "rest")
    assert until(lambda: up.pos_status(order_id) == "PAYED")
    earned = Decimal(120) + Decimal(30)  # 30% of each share's bill part
    assert until(lambda: up.cashback_balance(USER) - before == earned), (
        up.cashback_balance(USER) - before
    )

    # 100 of the soup's payment: a quarter of it, so a quarter of its cashback.
    payments = up.pos_call("/orders/payments", {"client_id": "rest-1", "orders": [order_id]})
    soup = payments.json()["orders"][0]["payments"][0]
    code, printed = pos_refund(up, order_id, "--amount", "100", "--payment", soup["id"],
                               "--refund-id", "refund-soup")  # fmt: skip
    assert code == 0, printed
    assert "refund refund-soup: refunded · 100.00 RUB, tip 0.00 RUB" in printed
    assert f"payment {soup['id']}: 400.00 RUB, refunded 100.00 RUB" in printed
    assert until(lambda: up.cashback_balance(USER) - before == earned - 30), (
        up.cashback_balance(USER) - before
    )

    # The same refund again is the same refund; the same id for another amount is refused.
    code, printed = pos_refund(up, order_id, "--amount", "100", "--payment", soup["id"],
                               "--refund-id", "refund-soup")  # fmt: skip
    assert code == 0, printed
    other = up.pos_call(
        "/orders/refund",
        {"client_id": "rest-1", "order_id": order_id, "refund_id": "refund-soup", "amount": "50"},
    )
    assert (other.status_code, other.json()["code"]) == (409, "refund_id_reused")
    too_much = up.pos_call(
        "/orders/refund",
        {"client_id": "rest-1", "order_id": order_id, "refund_id": "big", "amount": "401"},
    )
    assert (too_much.status_code, too_much.json()["code"]) == (409, "refund_exceeds_paid")

    # The rest of everything, tips included, spread over both payments.
    code, printed = pos_refund(up, order_id, "--amount", "400", "--tip", "40", "--refund-id", "all")
    assert code == 0, printed
    assert "refund all: refunded · 400.00 RUB, tip 40.00 RUB" in printed
    assert until(lambda: up.cashback_balance(USER) == before), up.cashback_balance(USER) - before

    # An old POS keeps PAYED; one that asks sees REFUNDED.
    assert up.pos_status(order_id) == "PAYED"
    aware = up.pos_call(
        "/orders/payments", {"client_id": "rest-1", "orders": [order_id], "refund_aware": True}
    )
    record = aware.json()["orders"][0]
    assert (record["status"], record["refunded"], record["refunded_tips"]) == (
        "REFUNDED",
        "500.00",
        "40.00",
    )
    # The guest sees what came back (the CLI follows the latest payment: the rest's).
    assert "Refunded to your card: 100.00 RUB" in guest(up, link)

    # Support: one order across every service, as a table and as JSON.
    code, table = support(up, "order", order_id)
    assert code == 0, table
    assert "refund-soup.1" in table
    code, text = support(up, "order", order_id, "--json")
    assert code == 0, text
    view = json.loads(text)
    assert view["ledger"]["refunded"] == "500.00"
    reversed_ = sorted(Decimal(r["amount"]) for r in view["cashback"]["reversals"])
    assert sum(reversed_) == earned
    operations = [op for inv in view["invoices"]["invoices"] for op in inv["operations"]]
    assert sum(op["kind"] == "refund" and op["status"] == "succeeded" for op in operations) == 3
    code, problems = support(up, "problems", "--json")
    assert code == 0, problems
