"""Payments of the whole bill over HTTP (SQLite, frozen clock): start, its moves, the TTL job,
the overdue list payments-eda's sweep pages through."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders, refresh_open_orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import TTL, create, move, start, without_replayed


async def status_of(client: httpx.AsyncClient, order_id: str) -> str:
    return str((await client.get(f"/v1/orders/{order_id}")).json()["status"])


def state_of(ledger: dict, payment_id: str) -> str:
    return next(str(p["state"]) for p in ledger["payments"] if p["payment_id"] == payment_id)


@pytest.fixture
async def order_id(client: httpx.AsyncClient) -> str:
    return str((await create(client))["order"]["order_id"])


async def moved(
    client: httpx.AsyncClient, order_id: str, payment_id: str, step: str
) -> dict[str, Any]:
    """A ``step`` of the payment, which must succeed: the order as it answers."""
    answer = await move(client, order_id, payment_id, step)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def assert_not_found(
    client: httpx.AsyncClient, order_id: str, payment_id: str, step: str
) -> None:
    """A ``step`` of a payment the order does not have is refused: 404 payment_not_found."""
    unknown = await move(client, order_id, payment_id, step)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "payment_not_found")


async def test_start_then_complete(client: httpx.AsyncClient, order_id: str) -> None:
    started = await start(client, order_id, "pay-1", amount="100.00")
    assert started.status_code == 200
    body = started.json()
    assert (body["status"], body["payment_id"], body["replayed"]) == (
        "PAYMENT_IN_PROGRESS",
        "pay-1",
        False,
    )
    assert (body["held"], body["left"]) == ("100.00", "0.00")
    assert state_of(body, "pay-1") == "holding"
    assert body["payments"][0]["invoice_id"] == "pay-1"
    # A repeat of the same start answers that payment; another payment is refused.
    again = await start(client, order_id, "pay-1")
    assert again.json()["replayed"] is True
    assert without_replayed(again) == without_replayed(started)
    other = await start(client, order_id, "pay-2")
    assert other.status_code == 409
    assert other.json()["code"] == "payment_in_progress"

    await assert_not_found(client, order_id, "pay-2", "complete")

    done = await moved(client, order_id, "pay-1", "complete")
    assert (done["status"], done["paid"], done["left"]) == ("PAYED", "100.00", "0.00")
    assert done["payments"][0]["paid_seq"] == 1
    assert (await move(client, order_id, "pay-1", "complete")).json() == done
    for refused in ("begin-rollback", "fail"):
        answer = await move(client, order_id, "pay-1", refused)
        assert (answer.status_code, answer.json()["code"]) == (409, "already_paid")

    again = await start(client, order_id, "pay-3")
    assert again.status_code == 409
    assert again.json()["code"] == "already_paid"
    # The paid payment's repeat still answers it as it stands.
    replayed = await start(client, order_id, "pay-1")
    assert (replayed.status_code, replayed.json()["status"]) == (200, "PAYED")


@pytest.mark.parametrize("before", [[], ["begin-rollback"]], ids=["holding", "rolling_back"])
async def test_a_captured_clear_completes_the_payment_from_any_phase(
    client: httpx.AsyncClient, order_id: str, before: list[str]
) -> None:
    """A captured hold's clear is fenced in transactions; its success must show as PAYED,
    also when a rollback began and then yielded to it (its void was refused)."""
    assert (await start(client, order_id, "pay-1")).status_code == 200
    for step in before:
        assert (await move(client, order_id, "pay-1", step)).status_code == 200
    done = await move(client, order_id, "pay-1", "complete")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], state_of(done.json(), "pay-1")) == ("PAYED", "paid")
    refused = await move(client, order_id, "pay-1", "fail")
    assert (refused.status_code, refused.json()["code"]) == (409, "already_paid")


async def test_fail_reopens_the_order(client: httpx.AsyncClient, order_id: str) -> None:
    assert (await start(client, order_id, "pay-1")).status_code == 200
    await assert_not_found(client, order_id, "pay-2", "fail")

    failed = await moved(client, order_id, "pay-1", "fail")
    assert (failed["status"], failed["held"], failed["left"]) == ("WAITING", "0.00", "100.00")
    assert state_of(failed, "pay-1") == "released"
    assert (await move(client, order_id, "pay-1", "fail")).status_code == 200
    # Given back, it is never taken as paid.
    late = await move(client, order_id, "pay-1", "complete")
    assert (late.status_code, late.json()["code"]) == (409, "payment_released")

    assert (await start(client, order_id, "pay-2")).status_code == 200
    done = (await move(client, order_id, "pay-2", "complete")).json()
    assert done["status"] == "PAYED"
    assert [p["paid_seq"] for p in done["payments"]] == [None, 1]


async def test_a_rollback_claim_is_repeatable_then_gives_the_payment_back(
    client: httpx.AsyncClient, order_id: str
) -> None:
    assert (await start(client, order_id, "pay-1")).status_code == 200
    rolling = await move(client, order_id, "pay-1", "begin-rollback")
    assert (rolling.json()["status"], state_of(rolling.json(), "pay-1")) == (
        "PAYMENT_IN_PROGRESS",
        "rolling_back",
    )
    assert (await move(client, order_id, "pay-1", "begin-rollback")).json() == rolling.json()
    assert (await move(client, order_id, "pay-1", "fail")).json()["status"] == "WAITING"
    refused = await move(client, order_id, "pay-1", "begin-rollback")
    assert (refused.status_code, refused.json()["code"]) == (409, "payment_released")


async def test_complete_without_start(client: httpx.AsyncClient, order_id: str) -> None:
    await assert_not_found(client, order_id, "pay-1", "complete")
    assert await status_of(client, order_id) == "WAITING"


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [("99.99", "RUB", "share_price_changed"), ("100", "USD", "bill_changed")],
)
async def test_start_of_another_bill_is_refused(
    client: httpx.AsyncClient, order_id: str, amount: str, currency: str, code: str
) -> None:
    response = await start(client, order_id, "pay-1", amount, currency=currency)
    assert response.status_code == 409
    assert response.json()["code"] == code
    assert await status_of(client, order_id) == "WAITING"
    stale = await start(client, order_id, "pay-1", bill_version=2)
    assert (stale.status_code, stale.json()["code"]) == (409, "bill_changed")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": 100}, "invalid_request"),
        ({"amount": "100.001"}, "invalid_amount"),
        ({"amount": "1e2"}, "invalid_amount"),
        ({"currency": "ZZZ"}, "unknown_currency"),
        ({"x": 1}, "unknown_field"),
        ({"payment_id": ""}, "invalid_request"),
        ({"choice": {"way": "all"}}, "invalid_request"),
        ({"choice": {"way": "rest", "items": [0]}}, "invalid_request"),  # items only with items
        ({"choice": {"way": "equal", "parts": 2, "items": [0]}}, "invalid_request"),
        ({"choice": {"way": "items", "items": [1]}}, "unknown_item"),  # one line on the bill
        ({"choice": {"way": "items", "items": [0, 499]}}, "unknown_item"),
        ({"choice": {"way": "items", "items": [500]}}, "invalid_request"),
        ({"choice": {"way": "items", "items": []}}, "unknown_item"),
        ({"token": ""}, "invalid_request"),
    ],
)
async def test_start_validation(
    client: httpx.AsyncClient, order_id: str, change: dict, code: str
) -> None:
    body = {"payment_id": "p", "choice": {"way": "rest"}, "amount": "100", "currency": "RUB"}
    response = await client.post(f"/v1/orders/{order_id}/payments/start", json=body | change)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert (ledger["payments"], ledger["taken_items"]) == ([], [])


@pytest.mark.parametrize("step", ["start", "begin-rollback", "fail", "complete"])
async def test_payment_on_unknown_order_is_404(client: httpx.AsyncClient, step: str) -> None:
    if step == "start":
        response = await start(client, "nope", "p")
    else:
        response = await move(client, "nope", "p", step)
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"
    for path in ("/v1/orders/nope/payments", "/v1/orders/nope/payments/quote?way=rest"):
        answer = await client.get(path)
        assert (answer.status_code, answer.json()["code"]) == (404, "order_not_found")


async def test_concurrent_starts_have_one_winner(client: httpx.AsyncClient, order_id: str) -> None:
    responses = await asyncio.gather(*(start(client, order_id, f"pay-{i}") for i in range(20)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    losers = [r.json()["code"] for r in responses if r.status_code != 200]
    assert losers == ["payment_in_progress"] * 19
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert [p["payment_id"] for p in ledger["payments"]] == [winners[0].json()["payment_id"]]


async def test_the_same_token_twice_at_once_is_one_payment(
    client: httpx.AsyncClient, order_id: str
) -> None:
    token = {"token": "tap-1", "request_hash": "h1"}
    responses = await asyncio.gather(*(start(client, order_id, "pay-t", **token) for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    assert sorted(r.json()["replayed"] for r in responses) == [False] + [True] * 7
    assert len({str(without_replayed(r)) for r in responses}) == 1
    assert len(responses[0].json()["payments"]) == 1
    # The same token with another request behind it is refused, whatever the payment became.
    for step in ("nothing", "complete"):
        if step == "complete":
            assert (await move(client, order_id, "pay-t", "complete")).status_code == 200
        reused = await start(client, order_id, "pay-t", token="tap-1", request_hash="h2")
        assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_token_reused")
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert (ledger["status"], len(ledger["payments"])) == ("PAYED", 1)


async def test_ttl_cancels_only_expired_waiting_orders(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock
) -> None:
    old = (await create(client, "old"))["order"]["order_id"]
    paying = (await create(client, "paying"))["order"]["order_id"]
    paid = (await create(client, "paid"))["order"]["order_id"]
    assert (await start(client, paying, "p1")).status_code == 200
    assert (await start(client, paid, "p2")).status_code == 200
    assert (await move(client, paid, "p2", "complete")).status_code == 200
    frozen_clock.advance(TTL - 10)
    young = (await create(client, "young"))["order"]["order_id"]

    service = service_of(app, OrderService)
    assert await close_expired_orders(service, TTL) == 0
    frozen_clock.advance(11)
    assert await close_expired_orders(service, TTL) == 1
    assert await close_expired_orders(service, TTL) == 0
    assert await status_of(client, old) == "CANCELED"
    assert await status_of(client, paying) == "PAYMENT_IN_PROGRESS"
    assert await status_of(client, paid) == "PAYED"
    assert await status_of(client, young) == "WAITING"

    # A payment far past the TTL is never canceled while under way...
    frozen_clock.advance(10 * TTL)
    assert await close_expired_orders(service, TTL) == 1  # "young"
    assert await status_of(client, paying) == "PAYMENT_IN_PROGRESS"
    # ...and a canceled order cannot be paid.
    closed = await start(client, old, "p3")
    assert closed.json()["code"] == "order_closed"
    # Once the payment fails, the next round closes the order.
    assert (await move(client, paying, "p1", "fail")).status_code == 200
    assert await close_expired_orders(service, TTL) == 1
    assert await status_of(client, paying) == "CANCELED"
    # A payment given back is never taken as paid, also after the TTL.
    late = await move(client, paying, "p1", "complete")
    assert (late.status_code, late.json()["code"]) == (409, "payment_released")

    metrics = (await client.get("/metrics")).text
    assert "qrpay_orders_canceled_by_ttl_total 3.0" in metrics
    await refresh_open_orders(service)
    assert "qrpay_open_orders 0.0" in (await client.get("/metrics")).text


async def test_open_orders_gauge(client: httpx.AsyncClient, app: FastAPI) -> None:
    a = (await create(client, "a"))["order"]["order_id"]
    await create(client, "b")
    assert (await start(client, a, "p")).status_code == 200
    await refresh_open_orders(service_of(app, OrderService))
    assert "qrpay_open_orders 2.0" in (await client.get("/metrics")).text
