"""Reversals, debt and its repayment, the history and an order's cashback over HTTP (SQLite,
frozen clock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from qrpay.cashback.repository import debt_repayments, reversals
from qrpay.kernel.clock import FrozenClock
from tests.support.component.cashback import accrue, reverse, spend


async def count(app: FastAPI, table: object) -> int:
    async with app.state.db.read() as session:
        statement = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int((await session.execute(statement)).scalar_one())


def metric(app: FastAPI, name: str) -> float:
    return float(app.state.metrics.registry.get_sample_value(f"qrpay_cashback_{name}_total") or 0)


async def balances(client: httpx.AsyncClient, user_id: str = "u1") -> list[dict[str, str]]:
    answer = await client.get(f"/v1/users/{user_id}/balance")
    assert answer.status_code == 200, answer.text
    result: list[dict[str, str]] = answer.json()["balances"]
    return result


async def test_reverse_then_repeat(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await accrue(client, "o1.inv1", amount="10")).status_code == 200
    first = await reverse(client, "o1.inv1", "ref-1.1", amount="2.5")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body == {
        "reversal": {
            "reversal_id": "ref-1.1",
            "accrual_key": "o1.inv1",
            "user_id": "u1",
            "amount": "2.50",
            "currency": "RUB",
            "taken": "2.50",
            "debt": "0.00",
            "created_at": body["reversal"]["created_at"],
        },
        "created": True,
    }
    assert body["reversal"]["created_at"].startswith("2026-01-01T12:00:00")
    assert await balances(client) == [{"currency": "RUB", "amount": "7.50", "debt": "0.00"}]

    # The same reversal printed differently is a repeat: the same answer, nothing written.
    again = await reverse(client, "o1.inv1", "ref-1.1", amount="2.50")
    assert again.status_code == 200
    assert again.json() == {"reversal": body["reversal"], "created": False}
    assert await count(app, reversals) == 1
    assert metric(app, "reversals") == 1
    assert metric(app, "debts") == 0
    assert await balances(client) == [{"currency": "RUB", "amount": "7.50", "debt": "0.00"}]


@pytest.mark.parametrize(
    ("key", "amount", "currency"),
    [("o1", "3", "RUB"), ("o2", "2.5", "RUB"), ("o1", "2.5", "USD")],
)
async def test_another_reversal_under_a_used_id_is_409(
    client: httpx.AsyncClient, app: FastAPI, key: str, amount: str, currency: str
) -> None:
    assert (await accrue(client, "o1")).status_code == 200
    assert (await accrue(client, "o2")).status_code == 200
    assert (await reverse(client, "o1", "r1", amount="2.5")).status_code == 200
    response = await reverse(client, key, "r1", amount=amount, currency=currency)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "reversal_mismatch"
    assert await count(app, reversals) == 1


async def test_reversals_never_sum_above_the_accrual(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await accrue(client, "o1", amount="10")).status_code == 200
    assert (await accrue(client, "o2", amount="50")).status_code == 200
    assert (await reverse(client, "o1", "r1", amount="6")).status_code == 200
    refused = await reverse(client, "o1", "r2", amount="4.01")
    assert refused.status_code == 409
    assert refused.json()["code"] == "reversal_exceeds_accrual"
    assert (await reverse(client, "o1", "r2", amount="4")).status_code == 200
    assert (await reverse(client, "o1", "r3", amount="0.01")).status_code == 409
    assert await count(app, reversals) == 2
    assert await balances(client) == [{"currency": "RUB", "amount": "50.00", "debt": "0.00"}]


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        ("nope", {"amount": "1", "currency": "RUB"}, 404, "accrual_not_found"),
        ("o1", {"amount": "1", "currency": "USD"}, 400, "currency_mismatch"),
        ("o1", {"amount": "0", "currency": "RUB"}, 400, "amount_not_positive"),
        ("o1", {"amount": "-1", "currency": "RUB"}, 400, "invalid_amount"),
        ("o1", {"amount": "0.001", "currency": "RUB"}, 400, "invalid_amount"),
        ("o1", {"amount": "1", "currency": "XXX"}, 400, "unknown_currency"),
        ("o1", {"amount": "1"}, 400, "missing_field"),
        ("o1", {"amount": "1", "currency": "RUB", "user_id": "u2"}, 400, "unknown_field"),
    ],
)
async def test_invalid_reversals(
    client: httpx.AsyncClient, app: FastAPI, key: str, body: dict, status: int, code: str
) -> None:
    assert (await accrue(client, "o1")).status_code == 200
    response = await client.put(f"/v1/cashback/accruals/{key}/reversals/r1", json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await count(app, reversals) == 0


async def test_what_the_balance_lacks_is_debt_repaid_by_the_next_accruals(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock
) -> None:
    assert (await accrue(client, "o1", amount="10")).status_code == 200
    await spend(app, client, "8.00")
    assert await balances(client) == [{"currency": "RUB", "amount": "2.00", "debt": "0.00"}]

    frozen_clock.advance(timedelta(minutes=1))
    reversed_ = await reverse(client, "o1", "r1", amount="5")
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["reversal"]["taken"], reversed_.json()["reversal"]["debt"]) == (
        "2.00",
        "3.00",
    )
    assert await balances(client) == [{"currency": "RUB", "amount": "0.00", "debt": "3.00"}]
    assert (metric(app, "reversals"), metric(app, "debts")) == (1, 1)

    # An accrual in another currency repays nothing.
    frozen_clock.advance(timedelta(minutes=1))
    assert (await accrue(client, "usd", amount="1", currency="USD")).status_code == 200
    # Partly: all of a 2.00 accrual repays; the accrual itself is recorded as sent.
    frozen_clock.advance(timedelta(minutes=1))
    partly = await accrue(client, "o2", amount="2")
    assert partly.json()["accrual"]["amount"] == "2.00"
    assert await balances(client) == [
        {"currency": "RUB", "amount": "0.00", "debt": "1.00"},
        {"currency": "USD", "amount": "1.00", "debt": "0.00"},
    ]
    # Fully: 1.00 of 5.00 repays, 4.00 is the guest's.
    frozen_clock.advance(timedelta(minutes=1))
    assert (await accrue(client, "o3", amount="5")).status_code == 200
    # A repeat of an accrual repays nothing again.
    assert (await accrue(client, "o3", amount="5")).json()["created"] is False
    assert (await balances(client))[0] == {"currency": "RUB", "amount": "4.00", "debt": "0.00"}
    assert await count(app, debt_repayments) == 2
    assert metric(app, "debt_repayments") == 2

    history = await client.get("/v1/cashback/history/u1")
    assert history.status_code == 200
    body = history.json()
    assert [a["order_id"] for a in body["accruals"]] == ["o3", "o2", "usd", "o1"]
    assert [
        (e["kind"], e["accrual_key"], e["amount"], e["taken"], e["debt"])
        for e in body["entries"]
        if e["reversal_id"] != "spend-u1-8.00"
    ] == [
        ("accrual", "o1", "10.00", None, None),
        ("reversal", "o1", "5.00", "2.00", "3.00"),
        ("accrual", "usd", "1.00", None, None),
        ("accrual", "o2", "2.00", None, None),
        ("repayment", "o2", "2.00", None, None),
        ("accrual", "o3", "5.00", None, None),
        ("repayment", "o3", "1.00", None, None),
    ]
    assert body["entries"][1]["source"] == "rest-1"
    assert body["entries"][2] == {
        "kind": "reversal",
        "accrual_key": "o1",
        "currency": "RUB",
        "amount": "5.00",
        "created_at": body["entries"][2]["created_at"],
        "reversal_id": "r1",
        "taken": "2.00",
        "debt": "3.00",
        "source": None,
    }
    # The older route answers the same.
    assert (await client.get("/v1/users/u1/accruals")).json() == body


async def test_concurrent_reversals_never_exceed_the_accrual(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await accrue(client, "o1", amount="10")).status_code == 200
    responses = await asyncio.gather(
        *(reverse(client, "o1", f"r{i}", amount="3") for i in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 409, 409, 409]
    assert await balances(client) == [{"currency": "RUB", "amount": "1.00", "debt": "0.00"}]


async def test_an_orders_cashback(client: httpx.AsyncClient, frozen_clock: FrozenClock) -> None:
    for key in ("o1", "o1.inv-a", "o1.inv-b", "o10.inv", "o1x", "oX1.y", "o_1.x"):
        assert (await accrue(client, key, amount="10")).status_code == 200
        frozen_clock.advance(timedelta(seconds=1))
    assert (await reverse(client, "o1.inv-b", "ref.1", amount="1")).status_code == 200
    assert (await reverse(client, "o10.inv", "ref10.1", amount="1")).status_code == 200
    answer = await client.get("/v1/cashback/orders/o1")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_id"] == "o1"
    assert [a["order_id"] for a in body["accruals"]] == ["o1", "o1.inv-a", "o1.inv-b"]
    assert [(r["reversal_id"], r["accrual_key"]) for r in body["reversals"]] == [
        ("ref.1", "o1.inv-b")
    ]
    assert body["repayments"] == []
    # LIKE's wildcards in an order id match only themselves.
    assert [
        a["order_id"] for a in (await client.get("/v1/cashback/orders/o_1")).json()["accruals"]
    ] == ["o_1.x"]
    assert (await client.get("/v1/cashback/orders/none")).json() == {
        "order_id": "none",
        "accruals": [],
        "reversals": [],
        "repayments": [],
    }


async def test_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in ("reversals", "debts", "debt_repayments"):
        assert f"qrpay_cashback_{name}_total" in text


async def test_keys_postgresql_cannot_store_are_400(client: httpx.AsyncClient) -> None:
    assert (await accrue(client, "o1")).status_code == 200
    for response in (
        await reverse(client, "o1", "r%00"),
        await reverse(client, "o%00", "r1"),
        await client.get("/v1/cashback/orders/o%00"),
    ):
        assert response.status_code == 400, response.text
