"""The payer API against mocked downstreams (SPEC 4.3)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from qrpay.kernel.clock import FrozenClock
from tests.support.component.payments_eda import (
    BASE,
    ORDER_ID,
    USER,
    Env,
    invoice_body,
    operation_body,
    order_body,
    pay_body,
    public_card,
    signature,
)
from tests.support.mockserver import (
    MockedRoute,
    drop_connection,
    error_response,
    json_response,
    slow,
)

UID = {"X-Yandex-UID": USER}
WATCHDOG = "payments_eda.hold_watchdog"


def preorder_params(**overrides: Any) -> dict[str, str]:
    params = {"service": "restaurant", "order_id": ORDER_ID, "hmac": signature()}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def status_params(**overrides: Any) -> dict[str, str]:
    params = {"order_id": ORDER_ID, "hmac": signature()}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


# --- preorder ---------------------------------------------------------------------------------


async def test_preorder_shows_bill_cards_and_cashback(pe: Env) -> None:
    pe.order()
    cards = pe.mock.json_handler(
        "/v1/payment-methods", {"payment_methods": [public_card()]}, method="GET"
    )
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params(), headers=UID)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_id"] == ORDER_ID
    assert body["status"] == "WAITING"
    assert body["restaurant"] == {"id": "rest-1", "name": "Pushkin Café"}
    assert body["bill"]["amount"] == "1000"
    assert body["bill"]["currency"] == "RUB"
    assert body["payment_methods"] == [public_card()]
    assert body["cashback"] == {"rate": "30%", "amount": "300", "currency": "RUB"}
    assert cards.next_call()["query"] == {"user_id": USER}
    assert pe.metric("qrpay_orders_viewed_by_qr_total", client_id="rest-1") == 1


async def test_preorder_cashback_is_capped(pe: Env) -> None:
    pe.order(amount="20000")
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params())
    assert answer.json()["cashback"]["amount"] == "3000"  # rest-1's cap


async def test_preorder_without_uid_lists_no_cards(pe: Env) -> None:
    pe.order()
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params())
    assert answer.status_code == 200
    assert answer.json()["payment_methods"] == []  # cardstorage not called (unmocked)


async def test_preorder_of_another_service_is_400(pe: Env) -> None:
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params(service="taxi"))
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "hmac",
    # "é" * 64: as long as a real signature but not ASCII (it used to be a 500, which told
    # that the order exists).
    [None, "", "0" * 64, signature("other-order"), "zz", "é" * 64],
)
async def test_missing_or_wrong_hmac_is_404_and_counted(pe: Env, hmac: str | None) -> None:
    pe.order()
    for path, params in (
        ("preorder", preorder_params(hmac=hmac)),
        ("orders", status_params(hmac=hmac)),
    ):
        answer = await pe.client.get(f"{BASE}/{path}", params=params)
        assert answer.status_code == 404
        assert answer.json()["code"] == "order_not_found"
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(hmac=hmac or ""), headers=UID)
    assert answer.status_code == 404
    assert answer.json()["code"] == "order_not_found"
    assert pe.metric("qrpay_hmac_rejections_total") == 3
    assert pe.metric("qrpay_orders_viewed_by_qr_total", client_id="rest-1") == 0


async def test_unknown_order_is_404_like_a_wrong_hmac(pe: Env) -> None:
    pe.mock.json_handler(
        f"/v1/orders/{ORDER_ID}",
        {"code": "order_not_found", "message": "nope"},
        404,
        method="GET",
    )
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params())
    assert answer.status_code == 404
    assert answer.json()["code"] == "order_not_found"
    assert pe.metric("qrpay_hmac_rejections_total") == 0


async def test_an_order_id_that_cannot_exist_never_reaches_eda(pe: Env) -> None:
    answer = await pe.client.get(f"{BASE}/orders", params=status_params(order_id="../metrics"))
    assert answer.status_code == 404


async def test_messages_follow_the_request_language(pe: Env) -> None:
    pe.order()
    answer = await pe.client.get(
        f"{BASE}/orders", params=status_params(hmac=None), headers={"X-Request-Language": "en"}
    )
    assert answer.json()["message"] == "Order not found"
    answer = await pe.client.get(f"{BASE}/orders", params=status_params(hmac=None))
    assert answer.json()["message"] == "Заказ не найден"


# --- pay ----------------------------------------------------------------------------------------


async def test_pay_starts_the_payment_then_the_captured_hold_and_puts_no_task(pe: Env) -> None:
    pe.order()
    pe.card()
    start_route = pe.eda_write("start", order_body("PAYMENT_IN_PROGRESS", payment_id="x"))
    ensure = pe.ensure_invoice()
    hold = pe.operations()

    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"

    started = start_route.next_call()["json"]
    payment_id = started["payment_id"]
    assert started == {
        "payment_id": payment_id,
        "amount": "1000",
        "currency": "RUB",
        "bill_version": 1,
    }
    # eda's order is the durable record the sweep looks at: no task per payment.
    assert pe.jobs(WATCHDOG) == []
    clock = pe.ctx.clock
    assert isinstance(clock, FrozenClock)
    # One call: the invoice with its first hold, captured by transactions in the same pass.
    assert hold.next_call()["json"] == {
        "operation_id": payment_id,
        "kind": "hold",
        "amount": "1000",
        "payment_method": {"id": "card-ok", "token": "sandbox-ok-card-ok"},
        "capture": True,
        # Half of hold_watchdog_seconds (30) after the start: later, transactions refuses it.
        "not_after": (clock.now() + timedelta(seconds=15)).isoformat().replace("+00:00", "Z"),
        "invoice": {
            "owner": "payments-eda",
            "order_id": ORDER_ID,
            "user_id": USER,
            "currency": "RUB",
            "callback": {
                "queue": "payments_eda_transactions",
                "task": "payments_eda.transaction_callback",
            },
        },
    }
    assert ensure.times_called == 0


async def test_pay_accepts_the_same_amount_written_otherwise(pe: Env) -> None:
    pe.order()
    pe.card()
    pe.eda_write("start", order_body("PAYMENT_IN_PROGRESS", payment_id="x"))
    hold = pe.operations()
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(amount="1000.00"), headers=UID)
    assert answer.status_code == 200
    assert hold.times_called == 1


async def test_pay_without_uid_is_401_and_touches_nothing(pe: Env) -> None:
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body())
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert pe.jobs() == []


@pytest.mark.parametrize(
    ("status", "code"), [("PAYED", "already_paid"), ("CANCELED", "order_closed")]
)
async def test_pay_of_a_paid_or_closed_order_is_409(pe: Env, status: str, code: str) -> None:
    pe.order(status, payment_id="old" if status == "PAYED" else None)
    answer = await pe.client.post(
        f"{BASE}/orders", json=pay_body(), headers={**UID, "X-Request-Language": "en"}
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == code
    assert pe.jobs() == []


async def test_pay_while_a_payment_is_under_way_is_waiting_without_a_second_hold(pe: Env) -> None:
    pe.order("PAYMENT_IN_PROGRESS", payment_id="other")
    for _ in range(3):
        answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
        assert answer.status_code == 200
        assert answer.json()["status"] == "WAITING"
    assert pe.jobs() == []  # no start, no hold, no watchdog (all unmocked)


async def test_pay_with_a_changed_bill_is_409(pe: Env) -> None:
    pe.order(amount="1200")
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(amount="1000"), headers=UID)
    assert answer.status_code == 409
    assert answer.json()["code"] == "bill_changed"
    assert pe.jobs() == []


@pytest.mark.parametrize("amount", ["1e3", "1000.001", "-1000", "abc", "1000\n"])
async def test_pay_with_a_malformed_amount_is_400(pe: Env, amount: str) -> None:
    pe.order()
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(amount=amount), headers=UID)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_amount"


async def test_eda_reporting_a_bill_change_at_start_is_409(pe: Env) -> None:
    pe.order()
    pe.card()
    pe.eda_write("start", {"code": "bill_changed", "message": "changed"}, 409)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 409
    assert answer.json()["code"] == "bill_changed"


@pytest.mark.parametrize(
    "card",
    [
        {"user_id": "someone-else"},
        {"available": False},
        None,  # cardstorage: not this user's
    ],
)
async def test_pay_with_a_card_that_is_not_usable_is_400(
    pe: Env, card: dict[str, Any] | None
) -> None:
    pe.order()
    if card is None:
        pe.mock.json_handler(
            "/v1/payment-methods/card-ok",
            {"code": "payment_method_not_found", "message": "no"},
            404,
            method="GET",
        )
    else:
        pe.card(**card)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 400
    assert answer.json()["code"] == "payment_method_unavailable"
    assert pe.jobs() == []  # no watchdog, no start (unmocked)


async def test_concurrent_duplicates_make_one_hold(pe: Env) -> None:
    pe.order()
    pe.card()
    started: list[str] = []

    def start(request: web.Request) -> web.Response:
        if started:
            return error_response(409, "payment_in_progress")
        started.append("x")
        return json_response(order_body("PAYMENT_IN_PROGRESS", payment_id="x"))

    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/start")(start)
    hold = pe.operations()
    answers = await asyncio.gather(
        *(pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID) for _ in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.json()["status"] for a in answers} == {"WAITING"}
    assert hold.times_called == 1


@pytest.mark.parametrize("failure", ["down", "slow", "5xx"])
async def test_a_hold_without_an_answer_is_not_a_failure(pe: Env, failure: str) -> None:
    """Issue 9 (1): transactions may have recorded the hold whose answer was lost or late.

    Rolling the order back then let its callback clear it while the POS saw WAITING and
    the guest paid again. An unknown outcome leaves the payment in progress: its
    callback, or the watchdog's void-first rollback, settles it.
    """
    pe.order()
    pe.card()
    start = pe.eda_write("start", order_body("PAYMENT_IN_PROGRESS", payment_id="x"))
    fail = pe.eda_write("fail", order_body())
    rollback = pe.eda_write("begin-rollback", order_body())
    path = f"/v1/invoices/{ORDER_ID}/operations"
    if failure == "down":
        pe.mock.handler(path)(drop_connection)
    elif failure == "slow":
        pe.mock.handler(path)(slow(2, lambda _r: {}))
    else:
        pe.operations({"code": "boom", "message": "no"}, 503)
    began = time.monotonic()
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert time.monotonic() - began < 1.5
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"
    assert start.times_called == 1
    assert fail.times_called == 0
    assert rollback.times_called == 0
    # eda's order stays in progress: the sweep settles it if the hold never arrived.


async def test_a_refused_hold_is_voided_then_rolled_back_and_is_503(pe: Env) -> None:
    pe.order()
    pe.card()
    calls: list[str] = []

    def void(request: web.Request) -> web.Response:
        calls.append("void")
        return json_response({"operation_id": payment_id_of(start_route), "outcome": "voided"})

    def start(_request: web.Request) -> web.Response:
        # The void's path names the payment id, known once the payment starts.
        payment_id = payment_id_of(start_route)
        pe.mock.handler(f"/v1/invoices/{ORDER_ID}/operations/{payment_id}/void")(void)
        return json_response(order_body("PAYMENT_IN_PROGRESS", payment_id=payment_id))

    start_route = pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/start")(start)
    pe.operations({"code": "hold_active", "message": "another hold is live"}, 409)

    def begin(_request: web.Request) -> web.Response:
        calls.append("begin-rollback")
        return json_response(
            order_body("PAYMENT_IN_PROGRESS", payment_id="p", phase="ROLLING_BACK")
        )

    def fail(_request: web.Request) -> web.Response:
        calls.append("fail")
        return json_response(order_body())

    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/begin-rollback")(begin)
    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/fail")(fail)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "transactions_unavailable"
    # The rollback claims the order, voids the hold, and only then gives the order back.
    assert calls == ["begin-rollback", "void", "fail"]


def payment_id_of(start_route: MockedRoute) -> str:
    return str(start_route.calls[0]["json"]["payment_id"])


async def test_a_failed_rollback_still_answers_503(pe: Env) -> None:
    pe.order()
    pe.card()
    pe.eda_write("start", order_body("PAYMENT_IN_PROGRESS", payment_id="x"))
    pe.eda_write("begin-rollback", {"code": "x", "message": "down"}, 500)
    pe.operations({"code": "hold_active", "message": "no"}, 409)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "transactions_unavailable"


@pytest.mark.parametrize(
    ("field", "value"), [("currency", "USD"), ("bill_version", 2), ("amount", "999")]
)
async def test_pay_of_a_bill_other_than_the_one_seen_is_bill_changed(
    pe: Env, field: str, value: Any
) -> None:
    """Issue 9 (3): the currency and the bill version the guest saw are checked too."""
    pe.order()
    pe.card()
    start = pe.eda_write("start", order_body("PAYMENT_IN_PROGRESS", payment_id="x"))
    body = {**pay_body(), "currency": "RUB", "bill_version": 1, field: value}
    answer = await pe.client.post(f"{BASE}/orders", json=body, headers=UID)
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "bill_changed"
    assert start.times_called == 0


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_eda_failing_is_503(pe: Env, failure: str) -> None:
    path = f"/v1/orders/{ORDER_ID}"
    if failure == "down":
        pe.mock.handler(path, "GET")(drop_connection)
    else:
        pe.mock.handler(path, "GET")(slow(2, lambda _r: order_body()))
    began = time.monotonic()
    for method, url, kwargs in (
        ("GET", f"{BASE}/preorder", {"params": preorder_params()}),
        ("GET", f"{BASE}/orders", {"params": status_params()}),
        ("POST", f"{BASE}/orders", {"json": pay_body()}),
    ):
        answer = await pe.client.request(method, url, headers=UID, **kwargs)
        assert answer.status_code == 503
        assert answer.json()["code"] == "eda_unavailable"
    assert time.monotonic() - began < 3 * 1.5


async def test_eda_failing_at_payment_start_is_503(pe: Env) -> None:
    pe.order()
    pe.card()
    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/start")(slow(2, lambda _r: {}))
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "eda_unavailable"
    # If eda did start it, the sweep finds the order in progress and rolls it back.


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_cardstorage_failing_is_503(pe: Env, failure: str) -> None:
    pe.order()
    handler = drop_connection if failure == "down" else slow(2, lambda _r: {})
    pe.mock.handler("/v1/payment-methods/card-ok", "GET")(handler)
    pe.mock.handler("/v1/payment-methods", "GET")(handler)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "cardstorage_unavailable"
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "cardstorage_unavailable"
    assert pe.jobs() == []


# --- payment status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "invoice", "expected"),
    [
        ({"status": "PAYED", "payment_id": "p1"}, None, "PAYED"),
        ({"status": "PAYMENT_IN_PROGRESS", "payment_id": "p1"}, None, "WAITING"),
        ({"status": "WAITING"}, 404, "WAITING"),
        ({"status": "WAITING"}, [operation_body(status="succeeded")], "WAITING"),
        ({"status": "WAITING"}, [operation_body(status="failed")], "DECLINED"),
        (
            {"status": "WAITING"},
            [
                operation_body("p0", status="failed"),
                operation_body("p1", status="pending", minute=5),
            ],
            "WAITING",
        ),
        ({"status": "CANCELED"}, None, "DECLINED"),
    ],
)
async def test_payment_status(pe: Env, order: dict[str, Any], invoice: Any, expected: str) -> None:
    pe.order(**order)
    if invoice == 404:
        pe.invoice({"code": "invoice_not_found", "message": "no"}, 404)
    elif invoice is not None:
        pe.invoice(invoice_body(invoice))
    answer = await pe.client.get(
        f"{BASE}/orders", params=status_params(), headers={"X-Request-Language": "en"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == expected
    assert answer.headers["X-Polling-Delay"] == "1"
    if order["status"] == "PAYED":
        assert answer.json()["message"] == "Paid; cashback will arrive soon"
    if order["status"] == "CANCELED":
        assert "pay at the restaurant" in answer.json()["message"]


async def test_polling_delay_comes_from_config(pe_factory: Any) -> None:
    async with pe_factory(payments={"polling_delay_seconds": "2.5"}) as env:
        env.order("PAYMENT_IN_PROGRESS", payment_id="p1")
        answer = await env.client.get(f"{BASE}/orders", params=status_params())
        assert answer.headers["X-Polling-Delay"] == "2.5"


async def test_payment_status_with_transactions_down_is_503(pe: Env) -> None:
    pe.order()
    pe.mock.handler(f"/v1/invoices/{ORDER_ID}", "GET")(drop_connection)
    answer = await pe.client.get(f"{BASE}/orders", params=status_params())
    assert answer.status_code == 503
    assert answer.json()["code"] == "transactions_unavailable"
