"""The payment state API and the TTL job over HTTP (SQLite, frozen clock)."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders, refresh_open_orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import TTL, create, start


async def post(
    client: httpx.AsyncClient, order_id: str, step: str, payment_id: str
) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/payment/{step}", json={"payment_id": payment_id}
    )


async def status_of(client: httpx.AsyncClient, order_id: str) -> str:
    return (await client.get(f"/v1/orders/{order_id}")).json()["status"]


@pytest.fixture
async def order_id(client: httpx.AsyncClient) -> str:
    return (await create(client))["order"]["order_id"]


async def test_start_then_complete(client: httpx.AsyncClient, order_id: str) -> None:
    started = await start(client, order_id, "pay-1", amount="100.00")
    assert started.status_code == 200
    assert started.json()["status"] == "PAYMENT_IN_PROGRESS"
    assert started.json()["payment_id"] == "pay-1"
    # A repeat of the same start is a no-op; another payment is refused.
    assert (await start(client, order_id, "pay-1")).json() == started.json()
    other = await start(client, order_id, "pay-2")
    assert other.status_code == 409
    assert other.json()["code"] == "payment_in_progress"

    mismatch = await post(client, order_id, "complete", "pay-2")
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "payment_mismatch"
    # An owner-started clear claims the order first; the claim shuts out the rollback.
    claimed = await post(client, order_id, "claim-clear", "pay-1")
    assert (claimed.json()["status"], claimed.json()["payment_phase"]) == (
        "PAYMENT_IN_PROGRESS",
        "CLEARING",
    )
    for refused in ("begin-rollback", "fail"):
        answer = await post(client, order_id, refused, "pay-1")
        assert answer.status_code == 409
        assert answer.json()["code"] == "payment_clearing"

    done = await post(client, order_id, "complete", "pay-1")
    assert done.status_code == 200
    assert done.json()["status"] == "PAYED"
    assert (await post(client, order_id, "complete", "pay-1")).json() == done.json()

    again = await start(client, order_id, "pay-3")
    assert again.status_code == 409
    assert again.json()["code"] == "already_paid"


@pytest.mark.parametrize("before", [[], ["begin-rollback"]], ids=["holding", "rolling_back"])
async def test_a_captured_clear_completes_the_payment_from_any_phase(
    client: httpx.AsyncClient, order_id: str, before: list[str]
) -> None:
    """A captured hold's clear is fenced in transactions; its success must show as PAYED,
    also when a rollback began and then yielded to it (its void was refused)."""
    assert (await start(client, order_id, "pay-1")).status_code == 200
    for step in before:
        assert (await post(client, order_id, step, "pay-1")).status_code == 200
    done = await post(client, order_id, "complete", "pay-1")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["payment_phase"]) == ("PAYED", None)
    refused = await post(client, order_id, "fail", "pay-1")
    assert (refused.status_code, refused.json()["code"]) == (409, "already_paid")


async def test_fail_reopens_the_order(client: httpx.AsyncClient, order_id: str) -> None:
    assert (await start(client, order_id, "pay-1")).status_code == 200
    mismatch = await post(client, order_id, "fail", "pay-2")
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "payment_mismatch"

    failed = await post(client, order_id, "fail", "pay-1")
    assert failed.status_code == 200
    assert failed.json()["status"] == "WAITING"
    assert failed.json()["payment_id"] is None
    assert (await post(client, order_id, "fail", "pay-1")).status_code == 200

    assert (await start(client, order_id, "pay-2")).status_code == 200
    assert (await post(client, order_id, "claim-clear", "pay-2")).status_code == 200
    assert (await post(client, order_id, "complete", "pay-2")).json()["status"] == "PAYED"


async def test_a_rollback_claim_shuts_out_the_clear(
    client: httpx.AsyncClient, order_id: str
) -> None:
    assert (await start(client, order_id, "pay-1")).status_code == 200
    rolling = await post(client, order_id, "begin-rollback", "pay-1")
    assert rolling.json()["payment_phase"] == "ROLLING_BACK"
    refused = await post(client, order_id, "claim-clear", "pay-1")
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_rolling_back"
    assert (await post(client, order_id, "fail", "pay-1")).json()["status"] == "WAITING"


async def test_complete_without_start(client: httpx.AsyncClient, order_id: str) -> None:
    response = await post(client, order_id, "complete", "pay-1")
    assert response.status_code == 409
    assert response.json()["code"] == "payment_not_started"


@pytest.mark.parametrize(("amount", "currency"), [("99.99", "RUB"), ("100", "USD")])
async def test_start_of_another_bill_is_bill_changed(
    client: httpx.AsyncClient, order_id: str, amount: str, currency: str
) -> None:
    response = await client.post(
        f"/v1/orders/{order_id}/payment/start",
        json={"payment_id": "pay-1", "amount": amount, "currency": currency},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "bill_changed"
    assert await status_of(client, order_id) == "WAITING"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"payment_id": "p", "amount": 100, "currency": "RUB"}, "invalid_request"),
        ({"payment_id": "p", "amount": "100.001", "currency": "RUB"}, "invalid_amount"),
        ({"payment_id": "p", "amount": "1e2", "currency": "RUB"}, "invalid_amount"),
        ({"payment_id": "p", "amount": "100", "currency": "ZZZ"}, "unknown_currency"),
        ({"payment_id": "p", "amount": "100", "currency": "RUB", "x": 1}, "unknown_field"),
        ({"payment_id": "", "amount": "100", "currency": "RUB"}, "invalid_request"),
    ],
)
async def test_start_validation(
    client: httpx.AsyncClient, order_id: str, body: dict, code: str
) -> None:
    response = await client.post(f"/v1/orders/{order_id}/payment/start", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


@pytest.mark.parametrize("step", ["start", "fail", "complete"])
async def test_payment_on_unknown_order_is_404(client: httpx.AsyncClient, step: str) -> None:
    body = (
        {"payment_id": "p", "amount": "100", "currency": "RUB"}
        if step == "start"
        else {"payment_id": "p"}
    )
    response = await client.post(f"/v1/orders/nope/payment/{step}", json=body)
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


async def test_concurrent_starts_have_one_winner(client: httpx.AsyncClient, order_id: str) -> None:
    responses = await asyncio.gather(*(start(client, order_id, f"pay-{i}") for i in range(20)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    losers = [r.json()["code"] for r in responses if r.status_code != 200]
    assert losers == ["payment_in_progress"] * 19
    order = (await client.get(f"/v1/orders/{order_id}")).json()
    assert order["payment_id"] == winners[0].json()["payment_id"]


async def test_ttl_cancels_only_expired_waiting_orders(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock
) -> None:
    old = (await create(client, "old"))["order"]["order_id"]
    paying = (await create(client, "paying"))["order"]["order_id"]
    paid = (await create(client, "paid"))["order"]["order_id"]
    assert (await start(client, paying, "p1")).status_code == 200
    assert (await start(client, paid, "p2")).status_code == 200
    assert (await post(client, paid, "claim-clear", "p2")).status_code == 200
    assert (await post(client, paid, "complete", "p2")).status_code == 200
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
    # ...and a canceled order cannot be paid, and a late completion is refused.
    closed = await start(client, old, "p3")
    assert closed.json()["code"] == "order_closed"
    # Once the payment fails, the next round closes the order.
    assert (await post(client, paying, "fail", "p1")).status_code == 200
    assert await close_expired_orders(service, TTL) == 1
    late = await post(client, paying, "complete", "p1")
    assert late.status_code == 409
    assert late.json()["code"] == "order_closed"

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


async def test_orders_in_a_status_oldest_change_first(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """What payments-eda's sweep asks: payments under way since before a moment, and every
    one being rolled back."""
    clock = service_of(app, OrderService).clock
    assert isinstance(clock, FrozenClock)
    first = (await create(client, "a"))["order"]["order_id"]
    second = (await create(client, "b"))["order"]["order_id"]
    waiting = (await create(client, "c"))["order"]["order_id"]
    assert (await start(client, first, "p1")).status_code == 200
    clock.advance(10)
    assert (await start(client, second, "p2")).status_code == 200
    moment = clock.now().isoformat()
    clock.advance(10)
    assert (await post(client, second, "begin-rollback", "p2")).status_code == 200

    async def listed(**params: str) -> list[str]:
        answer = await client.get("/v1/orders", params={"status": "PAYMENT_IN_PROGRESS", **params})
        assert answer.status_code == 200, answer.text
        return [order["order_id"] for order in answer.json()["orders"]]

    assert await listed() == [first, second]
    assert await listed(updated_before=moment) == [first]
    assert await listed(payment_phase="ROLLING_BACK") == [second]
    assert await listed(limit="1") == [first]
    assert waiting not in await listed()
    bad = await client.get("/v1/orders", params={"status": "PAYMENT_IN_PROGRESS", "limit": "0"})
    assert bad.status_code in (400, 422)
