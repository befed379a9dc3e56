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
    ledger_body,
    order_body,
    pay_body,
    payment_body,
    public_card,
    signature,
)
from tests.support.mockserver import (
    drop_connection,
    error_response,
    json_response,
    slow,
)

UID = {"X-Yandex-UID": USER}


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
    pe.ledger()  # the status is read from the order's payments
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
    pe.unknown_order()
    answer = await pe.client.get(f"{BASE}/preorder", params=preorder_params())
    assert answer.status_code == 404
    assert answer.json()["code"] == "order_not_found"
    assert pe.metric("qrpay_hmac_rejections_total") == 0


async def test_an_order_id_that_cannot_exist_never_reaches_eda(pe: Env) -> None:
    answer = await pe.client.get(f"{BASE}/orders", params=status_params(order_id="../metrics"))
    assert answer.status_code == 404


async def test_messages_follow_the_request_language(pe: Env) -> None:
    pe.ledger()
    answer = await pe.client.get(
        f"{BASE}/orders", params=status_params(hmac=None), headers={"X-Request-Language": "en"}
    )
    assert answer.json()["message"] == "Order not found"
    answer = await pe.client.get(f"{BASE}/orders", params=status_params(hmac=None))
    assert answer.json()["message"] == "Заказ не найден"


# --- pay ----------------------------------------------------------------------------------------


async def test_pay_starts_the_payment_then_the_captured_hold_and_puts_no_task(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()

    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"

    started = eda.start.next_call()["json"]
    payment_id = started["payment_id"]
    assert answer.json()["payment_id"] == payment_id
    # The whole bill is the share of everything left, at the total the guest saw; without a
    # token (a seed-era client) the payment has none.
    assert started == {
        "payment_id": payment_id,
        "choice": {"way": "rest", "parts": None, "items": [], "amount": None},
        "amount": "1000.00",
        "tip": "0.00",
        "currency": "RUB",
        "bill_version": None,
        "token": None,
        "request_hash": None,
    }
    # eda's payment is the durable record the sweep looks at: no task per payment.
    assert pe.jobs() == []
    clock = pe.ctx.clock
    assert isinstance(clock, FrozenClock)
    # One call: the payment's own invoice with its first hold, captured by transactions in
    # the same pass.
    call = hold.next_call()
    assert call["json"] == {
        "operation_id": payment_id,
        "kind": "hold",
        "amount": "1000.00",
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
    assert hold.path == "/v1/invoices/{invoice}/operations"
    assert pe.mock.requests_by_path[f"/v1/invoices/{payment_id}/operations"] == 1


async def test_pay_accepts_the_same_amount_written_otherwise(pe: Env) -> None:
    pe.eda()
    pe.card()
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
    eda = pe.eda(*([payment_body("old", "paid")] if status == "PAYED" else []))
    eda.closed = None if status == "PAYED" else status
    eda.refuse = (409, code)
    pe.card()
    answer = await pe.client.post(
        f"{BASE}/orders", json=pay_body(), headers={**UID, "X-Request-Language": "en"}
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == code
    assert pe.jobs() == []
    assert list(eda.payments) == (["old"] if status == "PAYED" else [])  # no hold (unmocked)


async def test_pay_while_a_payment_is_under_way_is_waiting_without_a_second_hold(pe: Env) -> None:
    eda = pe.eda(payment_body("other"))
    eda.refuse = (409, "payment_in_progress")
    pe.card()
    for _ in range(3):
        answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
        assert answer.status_code == 200
        assert answer.json()["status"] == "WAITING"
    assert list(eda.payments) == ["other"]
    assert pe.jobs() == []  # no hold (unmocked), no task


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
        pe.mock.error_handler(
            "/v1/payment-methods/card-ok", 404, "payment_method_not_found", "no", method="GET"
        )
    else:
        pe.card(**card)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 400
    assert answer.json()["code"] == "payment_method_unavailable"
    assert pe.jobs() == []  # no task, no start (unmocked)


async def test_concurrent_duplicates_make_one_hold(pe: Env) -> None:
    """Without a token (a seed-era client): eda admits one payment of everything left, the
    others follow it (WAITING)."""
    pe.order()
    pe.card()
    started: list[str] = []

    async def start(request: web.Request) -> web.Response:
        if started:
            return error_response(409, "payment_in_progress")
        payment_id = (await request.json())["payment_id"]
        started.append(payment_id)
        ledger = ledger_body(payment_body(payment_id))
        return json_response({**ledger, "payment_id": payment_id, "replayed": False})

    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payments/start")(start)
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

    Rolling the payment back then let its callback clear it while the POS saw WAITING and
    the guest paid again. An unknown outcome leaves the payment under way: its callback,
    or the sweep's void-first rollback, settles it.
    """
    eda = pe.eda()
    pe.card()
    path = "/v1/invoices/{invoice}/operations"
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
    assert eda.start.times_called == 1
    assert eda.moves["fail"].times_called == 0
    assert eda.moves["begin-rollback"].times_called == 0
    # eda's payment stays under way: the sweep settles it if the hold never arrived.
    [payment_id] = eda.payments
    assert eda.state(payment_id) == "holding"


async def test_a_refused_hold_is_voided_then_rolled_back_and_is_503(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    pe.operations({"code": "hold_active", "message": "another hold is live"}, 409)
    seen_at_void: list[str] = []

    def void(request: web.Request) -> web.Response:
        [payment_id] = eda.payments
        seen_at_void.append(eda.state(payment_id))
        return json_response({"operation_id": payment_id, "outcome": "voided"})

    voids = pe.mock.handler("/v1/invoices/{invoice}/operations/{hold}/void")(void)
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 503
    assert answer.json()["code"] == "transactions_unavailable"
    # The rollback claims the payment, voids the hold, and only then gives the payment back.
    [payment_id] = eda.payments
    assert voids.next_call()["json"] == {"release_operation_id": f"{payment_id}.unhold"}
    assert seen_at_void == ["rolling_back"]
    assert eda.state(payment_id) == "released"
    assert eda.moves["fail"].times_called == 1


async def test_a_failed_rollback_still_answers_503(pe: Env) -> None:
    pe.eda()
    pe.card()
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
    eda = pe.eda()
    pe.card()
    body = {**pay_body(), "currency": "RUB", "bill_version": 1, field: value}
    answer = await pe.client.post(f"{BASE}/orders", json=body, headers=UID)
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "bill_changed"
    assert eda.start.times_called == 0


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_eda_failing_is_503(pe: Env, failure: str) -> None:
    for path in (f"/v1/orders/{ORDER_ID}", f"/v1/orders/{ORDER_ID}/payments"):
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


async def test_eda_not_answering_a_payment_start_is_waiting(pe: Env) -> None:
    """eda may have admitted the payment: its outcome is unknown, never a 5xx."""
    pe.order()
    pe.card()
    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payments/start")(slow(2, lambda _r: {}))
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"
    # No hold was sent (unmocked); if eda did start it, the sweep finds the payment under
    # way and rolls it back.


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
    ("payments", "closed", "expected"),
    [
        ([payment_body("p1", "paid")], None, "PAYED"),
        ([payment_body("p1", "holding")], None, "WAITING"),
        ([], None, "WAITING"),
        ([payment_body("p1", "released")], None, "DECLINED"),
        # the order's latest payment is the one followed
        (
            [payment_body("p0", "released"), payment_body("p1", "holding", minute=5)],
            None,
            "WAITING",
        ),
        (
            [payment_body("p0", "holding"), payment_body("p1", "released", minute=5)],
            None,
            "DECLINED",
        ),
        ([], "CANCELED", "DECLINED"),
    ],
)
async def test_payment_status(
    pe: Env, payments: list[dict[str, Any]], closed: str | None, expected: str
) -> None:
    """The status is eda's ledger alone: transactions is not asked (unmocked)."""
    pe.ledger(*payments, status=closed)
    answer = await pe.client.get(
        f"{BASE}/orders", params=status_params(), headers={"X-Request-Language": "en"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == expected
    assert answer.json()["payment_id"] == (payments[-1]["payment_id"] if payments else None)
    assert answer.headers["X-Polling-Delay"] == "1"
    if expected == "PAYED":
        assert answer.json()["message"] == "Paid; cashback will arrive soon"
    if closed == "CANCELED":
        assert "pay at the restaurant" in answer.json()["message"]


async def test_polling_delay_comes_from_config(pe_factory: Any) -> None:
    async with pe_factory(payments={"polling_delay_seconds": "2.5"}) as env:
        env.ledger(payment_body("p1"))
        answer = await env.client.get(f"{BASE}/orders", params=status_params())
        assert answer.headers["X-Polling-Delay"] == "2.5"


# --- the pay budget -------------------------------------------------------------------------------


async def test_a_hold_slower_than_the_pay_budget_is_answered_waiting(pe_factory: Any) -> None:
    """Issue 18: api-proxy waits ``payments.pay_budget_ms`` for a pay; every downstream
    call of the pay shares that budget, so a hold that outlasts what is left of it is cut
    there and answered WAITING (its outcome unknown: the callback or the sweep settles
    it), never 5xx. transactions' own timeout is a minute here: only the budget can end the
    call (without it this test runs into pytest's timeout)."""
    budget = {"payments": {"pay_budget_ms": 300}, "timeouts": {"transactions": 60_000}}
    async with pe_factory(**budget) as env:
        eda = env.eda()
        env.card()
        answer_held = asyncio.Event()

        async def hold(_request: web.Request) -> web.Response:
            await answer_held.wait()  # transactions answers only once the test lets it
            return json_response({"code": "late", "message": "too late"}, 503)

        route = env.mock.handler("/v1/invoices/{invoice}/operations")(hold)
        try:
            answer = await env.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
        finally:
            answer_held.set()
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "WAITING"
        assert route.times_called == 1  # no time was left for a second try
        [payment_id] = eda.payments
        assert eda.state(payment_id) == "holding"  # not rolled back: the hold may exist
        assert eda.moves["begin-rollback"].times_called == 0
        timeouts = env.metric(
            "qrpay_downstream_requests_total",
            downstream="transactions",
            endpoint="start_hold",
            outcome="timeout",
        )
        assert timeouts == 1


async def test_the_budget_spent_before_the_hold_leaves_it_no_try(pe_factory: Any) -> None:
    """The card read and the start used the whole budget: the hold is not tried past it
    (transactions is never called), and the pay is WAITING (eda may have admitted it), its
    payment left to the sweep."""
    budget = {"payments": {"pay_budget_ms": 300}, "timeouts": {"eda": 60_000}}
    async with pe_factory(**budget) as env:
        eda = env.eda()
        env.card()
        start = eda.start.handler
        started, answer_held = asyncio.Event(), asyncio.Event()

        async def slow_start(request: web.Request) -> Any:
            answer = await start(request)  # admitted in eda...
            started.set()
            await answer_held.wait()  # ...its answer held until the pay has answered
            return answer

        eda.start.handler = slow_start
        try:
            answer = await env.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
        finally:
            answer_held.set()
        assert started.is_set()
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "WAITING"
        assert env.mock.unmocked == []  # no hold was sent
