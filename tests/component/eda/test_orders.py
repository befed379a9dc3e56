"""Creating, reading and listing orders over HTTP (SQLite, frozen clock)."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from qrpay.eda.jobs import close_expired_orders
from qrpay.eda.repository import orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import bill, create, create_body, move, start


async def count_rows(app: FastAPI) -> int:
    async with app.state.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(orders))).scalar_one())


async def test_create_then_get(client: httpx.AsyncClient) -> None:
    created = await create(client, amount="100.5", element="120")
    assert created["outcome"] == "created"
    order = created["order"]
    assert len(order["order_id"]) == 32
    assert order["status"] == "WAITING"
    assert order["bill"] == bill("100.50", "120.00")
    assert order["bill_version"] == 1
    assert "payment_id" not in order  # an order's payments are its ledger's
    assert order["created_at"].startswith("2026-01-01T12:00:00")

    got = await client.get(f"/v1/orders/{order['order_id']}")
    assert got.status_code == 200
    assert got.json() == order


async def test_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orders/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


async def test_repeat_with_the_same_bill_is_existing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first = await create(client, amount="100", element="120")
    # The same amounts printed differently are the same bill.
    again = await create(client, amount="100.00", element="120.0")
    assert again["outcome"] == "existing"
    assert again["order"] == first["order"]
    assert await count_rows(app) == 1


async def test_another_bill_replaces_an_unpaid_one(client: httpx.AsyncClient) -> None:
    first = await create(client, amount="100")
    replaced = await create(client, amount="150")
    assert replaced["outcome"] == "bill_replaced"
    assert replaced["order"]["order_id"] == first["order"]["order_id"]
    assert replaced["order"]["bill"]["amount"] == "150.00"
    assert replaced["order"]["bill_version"] == 2
    # The payer who saw the old bill is told it changed.
    stale = await start(client, first["order"]["order_id"], amount="150", bill_version=1)
    assert stale.status_code == 409
    assert stale.json()["code"] == "bill_changed"
    response = await start(client, first["order"]["order_id"], amount="100")
    assert response.status_code == 409
    assert response.json()["code"] == "share_price_changed"
    fresh = await start(client, first["order"]["order_id"], amount="150", bill_version=2)
    assert fresh.status_code == 200


@pytest.mark.parametrize("step", ["start", "complete", "cancel"])
async def test_another_bill_once_paying_or_closed_is_locked(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock, step: str
) -> None:
    order_id = (await create(client))["order"]["order_id"]
    if step == "cancel":
        frozen_clock.advance(3601)
        assert await close_expired_orders(service_of(app, OrderService), 3600) == 1
    else:
        assert (await start(client, order_id)).status_code == 200
    if step == "complete":
        assert (await move(client, order_id, "pay-1", "complete")).status_code == 200
    response = await client.post("/v1/orders", json=create_body(amount="150"))
    assert response.status_code == 409
    assert response.json()["code"] == "order_locked"
    # The same bill is still answered with the order.
    again = await create(client)
    assert again["outcome"] == "existing"


async def test_statuses_lists_only_existing_orders(client: httpx.AsyncClient) -> None:
    a = (await create(client, "a"))["order"]["order_id"]
    b = (await create(client, "b"))["order"]["order_id"]
    assert (await start(client, b)).status_code == 200
    response = await client.post("/v1/orders/statuses", json={"order_ids": [a, "missing", b, a]})
    assert response.status_code == 200
    got = sorted(response.json()["orders"], key=lambda o: o["order_id"])
    assert got == sorted(
        [
            {
                "order_id": a,
                "client_id": "rest-1",
                "status": "WAITING",
                "version": 1,
                "refunded_fully": False,
            },
            {
                "order_id": b,
                "client_id": "rest-1",
                "status": "PAYMENT_IN_PROGRESS",
                "version": 2,
                "refunded_fully": False,
            },
        ],
        key=lambda o: o["order_id"],
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"order_ids": []}, "invalid_request"),
        ({"order_ids": [f"id{i}" for i in range(101)]}, "invalid_request"),
        ({"order_ids": ["a"], "extra": 1}, "unknown_field"),
    ],
)
async def test_statuses_validation(client: httpx.AsyncClient, body: dict, code: str) -> None:
    response = await client.post("/v1/orders/statuses", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda b: b.update(unexpected=1), "unknown_field"),
        (lambda b: b["bill"].update(amount=100), "invalid_request"),
        (lambda b: b["bill"].update(amount="100.123"), "invalid_amount"),
        (lambda b: b["bill"].update(amount="0"), "amount_not_positive"),
        (lambda b: b["bill"].update(currency="XXX"), "unknown_currency"),
        (lambda b: b["bill"].update(elements=[]), "invalid_request"),
        (lambda b: b.pop("client_id"), "missing_field"),
        (lambda b: b.update(client_id="x" * 65), "invalid_request"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, app: FastAPI, change, code: str
) -> None:
    body = create_body()
    change(body)
    response = await client.post("/v1/orders", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert await count_rows(app) == 0


async def test_concurrent_identical_creates_make_one_order(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    responses = await asyncio.gather(
        *(client.post("/v1/orders", json=create_body("same")) for _ in range(30))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["order"]["order_id"] for r in responses}) == 1
    assert sorted(r.json()["outcome"] for r in responses) == ["created"] + ["existing"] * 29
    assert await count_rows(app) == 1


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/orders",
        "/v1/orders/statuses",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/payments",
        "/v1/orders/{order_id}/payments/quote",
        "/v1/orders/{order_id}/payments/start",
        "/v1/orders/{order_id}/payments/begin-rollback",
        "/v1/orders/{order_id}/payments/fail",
        "/v1/orders/{order_id}/payments/complete",
        "/v1/orders/payments/overdue",
    ):
        assert path in paths
    # One set of payment routes (issue 18): the whole-bill and share routes are gone.
    assert not [p for p in paths if "/payment/" in p or "/shares" in p]


async def test_ready_pings_the_database(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ready")).status_code == 200
