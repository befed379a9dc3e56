"""A share of a split bill in payments-eda, its downstreams mocked: the same saga as the whole
bill (issue 18). The share's price and tip go to eda and its hold; the clear's callback
completes the share and accrues its own cashback; the sweep gives back a share whose hold
never came, and a share's rollback yields to its captured clear; the payer page reads the
shares from eda's ledger."""

from __future__ import annotations

from typing import Any

from qrpay.payments_eda.schemas import payment_id_for
from tests.support.component.payments_eda import (
    BASE,
    ORDER_ID,
    TOKEN,
    USER,
    Env,
    payment_body,
    share_body,
    signature,
    to_check,
)

SHARE = "s1"
TAP = {"X-Yandex-UID": USER, "X-Idempotency-Token": TOKEN}
MISSING = {"code": "invoice_not_found", "message": "no"}


def share_callback(op_id: str, kind: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "invoice_id": SHARE,
        "order_id": ORDER_ID,
        "user_id": USER,
        "operation_id": op_id,
        "kind": kind,
        "status": status,
        "amount": "400.00",
        "currency": "RUB",
        "target": None if kind == "hold" else SHARE,
        "reason": None if status == "succeeded" else "card_declined",
    }


async def test_a_share_goes_to_eda_at_its_price_and_is_held_with_its_tip(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    body = share_body("400", tip_percent=10, currency="RUB", bill_version=1)
    answer = await pe.client.post(f"{BASE}/orders/share", json=body, headers=TAP)
    assert answer.status_code == 200, answer.text
    share_id = payment_id_for(ORDER_ID, TOKEN)
    assert answer.json() == {
        "share_id": share_id,
        "status": "WAITING",
        "message": "Платёж обрабатывается",
        "payment_id": share_id,  # a share is a payment: the same id
        "refunded": None,
    }
    started = eda.start.next_call()["json"]
    assert started["choice"] == {"way": "amount", "parts": None, "items": [], "amount": "400"}
    assert (started["amount"], started["tip"], started["bill_version"]) == ("400.00", "40.00", 1)
    sent = hold.next_call()["json"]
    assert (sent["operation_id"], sent["amount"]) == (share_id, "440.00")
    assert pe.mock.requests_by_path[f"/v1/invoices/{share_id}/operations"] == 1


async def test_a_tip_not_offered_is_400_before_anything_starts(pe: Env) -> None:
    eda = pe.eda()
    answer = await pe.client.post(
        f"{BASE}/orders/share", json=share_body(tip_percent=12), headers=TAP
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "tip_not_offered"
    assert eda.start.times_called == 0


async def test_eda_refusing_a_share_speaks_the_guests_words(pe: Env) -> None:
    eda = pe.eda(payment_body("s0", amount="900.00"))
    eda.refuse = (409, "amount_exceeds_left")
    pe.card()
    answer = await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP)
    assert answer.status_code == 409
    assert answer.json()["code"] == "amount_exceeds_left"


async def test_a_share_status_and_the_split_come_from_edas_ledger(pe: Env) -> None:
    pe.ledger(
        payment_body("s0", "paid", "600.00"),
        payment_body("s2", "released", "400.00", minute=1),
        payment_body(SHARE, "holding", "400.00", items=[0], minute=2),
    )
    params = {"order_id": ORDER_ID, "hmac": signature()}
    answer = await pe.client.get(f"{BASE}/orders/share", params={**params, "share_id": SHARE})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"
    assert answer.json()["share_id"] == answer.json()["payment_id"] == SHARE
    answer = await pe.client.get(f"{BASE}/orders/share", params={**params, "share_id": "s0"})
    assert answer.json()["status"] == "PAYED"
    answer = await pe.client.get(f"{BASE}/orders/share", params={**params, "share_id": "nope"})
    assert answer.status_code == 404
    assert answer.json()["code"] == "share_not_found"
    split = (await pe.client.get(f"{BASE}/orders/split", params=params)).json()
    assert (split["paid"], split["held"], split["left"]) == ("600.00", "400.00", "0.00")
    assert split["taken_items"] == [0]
    assert split["tip_percents"] == [5, 10, 15]
    # A share given back reserves nothing: the payer page does not show it.
    assert split["shares"] == [
        {"amount": "600.00", "items": [], "state": "paid"},
        {"amount": "400.00", "items": [0], "state": "holding"},
    ]


async def test_a_captured_clear_completes_the_share_and_earns_its_cashback(pe: Env) -> None:
    eda = pe.eda(payment_body("s0", "paid", "600.00"), payment_body(SHARE, "holding", "400.00"))
    accrual = {
        "order_id": f"{ORDER_ID}.{SHARE}",
        "user_id": USER,
        "amount": "120",
        "currency": "RUB",
        "source": "rest-1",
        "created_at": "2026-01-01T12:00:00Z",
    }
    accrue = pe.mock.json_handler(
        f"/v1/accruals/{ORDER_ID}.{SHARE}", {"accrual": accrual, "created": True}, method="PUT"
    )
    await pe.handlers.transaction_callback(share_callback(f"{SHARE}.clear", "clear"))
    assert eda.moves["complete"].next_call()["json"] == {"payment_id": SHARE}
    assert eda.state(SHARE) == "paid"
    # 30% of the share's 400 (rest-1's cap of 3000 is far): keyed by the share, not the order.
    assert accrue.next_call()["json"] == {
        "user_id": USER,
        "amount": "120",
        "currency": "RUB",
        "source": "rest-1",
    }
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 1  # the last


async def test_a_declined_hold_gives_the_share_back(pe: Env) -> None:
    eda = pe.eda(payment_body(SHARE, "holding", "400.00"))
    await pe.handlers.transaction_callback(share_callback(SHARE, "hold", "failed"))
    assert eda.moves["fail"].next_call()["json"] == {"payment_id": SHARE}
    assert eda.state(SHARE) == "released"


async def test_the_sweep_gives_back_a_share_whose_hold_never_came(pe: Env) -> None:
    eda = pe.eda(payment_body(SHARE, "holding", "400.00"))
    pe.overdue([to_check(SHARE)])
    pe.invoice(MISSING, 404, invoice_id=SHARE)
    void = pe.void(MISSING, 404, hold=SHARE)
    assert await pe.service.sweep_stuck_payments() == 1
    assert eda.moves["begin-rollback"].next_call()["json"] == {"payment_id": SHARE}
    assert void.next_call()["json"] == {"release_operation_id": f"{SHARE}.unhold"}
    assert eda.moves["fail"].next_call()["json"] == {"payment_id": SHARE}
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 1


async def test_a_share_rollback_yields_to_its_captured_clear(pe: Env) -> None:
    eda = pe.eda(payment_body(SHARE, "rolling_back", "400.00"))
    pe.overdue([to_check(SHARE, "rolling_back")])
    pe.void({"code": "hold_clearing", "message": "captured"}, 409, hold=SHARE)
    assert await pe.service.sweep_stuck_payments() == 1
    assert not eda.moves["fail"].times_called  # the clear finishes it: never given back
    assert eda.state(SHARE) == "rolling_back"
