"""Accruals, balances and history over HTTP (SQLite, frozen clock)."""

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from qrpay.cashback.repository import accruals
from qrpay.kernel.clock import FrozenClock
from tests.support.component.cashback import accrual, accrue, assert_one_accrual_won
from tests.support.services import dev_config, make_context, running_service


async def count_rows(app: FastAPI) -> int:
    async with app.state.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(accruals))).scalar_one())


def created_metric(app: FastAPI) -> float:
    value = app.state.metrics.registry.get_sample_value("qrpay_cashback_accruals_total")
    return float(value or 0)


async def test_accrue_then_repeat(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = await accrue(client, amount="10.5")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] is True
    assert body["accrual"] == {
        "order_id": "o1",
        "user_id": "u1",
        "amount": "10.50",
        "currency": "RUB",
        "source": "rest-1",
        "created_at": body["accrual"]["created_at"],
    }
    assert body["accrual"]["created_at"].startswith("2026-01-01T12:00:00")

    # The same accrual printed differently, even from another source, is a repeat.
    again = await accrue(client, amount="10.50", source="retry")
    assert again.status_code == 200
    assert again.json() == {"accrual": body["accrual"], "created": False}
    assert await count_rows(app) == 1
    assert created_metric(app) == 1


@pytest.mark.parametrize("other", [{"amount": "11"}, {"user_id": "u2"}, {"currency": "USD"}])
async def test_another_accrual_for_the_order_is_409(
    client: httpx.AsyncClient, app: FastAPI, other: dict[str, str]
) -> None:
    assert (await accrue(client)).status_code == 200
    response = await accrue(client, **other)
    assert response.status_code == 409
    assert response.json()["code"] == "accrual_mismatch"
    assert await count_rows(app) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (accrual(amount="0"), "amount_not_positive"),
        (accrual(amount="-1"), "invalid_amount"),
        (accrual(amount="0.001"), "invalid_amount"),
        (accrual(amount="1e3"), "invalid_amount"),
        (accrual(currency="XXX"), "unknown_currency"),
        (accrual(extra="x"), "unknown_field"),
        ({"amount": "1", "currency": "RUB"}, "missing_field"),
    ],
)
async def test_invalid_accruals_are_400(
    client: httpx.AsyncClient, app: FastAPI, body: dict, code: str
) -> None:
    response = await client.put("/v1/accruals/o1", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert await count_rows(app) == 0


async def test_balance_is_exact_per_currency(client: httpx.AsyncClient) -> None:
    for i in range(3):
        assert (await accrue(client, f"o{i}", amount="0.10")).status_code == 200
    assert (await accrue(client, "usd", amount="1.5", currency="USD")).status_code == 200
    assert (await accrue(client, "other", user_id="u2", amount="5")).status_code == 200
    balance = await client.get("/v1/users/u1/balance")
    assert balance.status_code == 200
    assert balance.json() == {
        "user_id": "u1",
        "balances": [
            {"currency": "RUB", "amount": "0.30", "debt": "0.00"},
            {"currency": "USD", "amount": "1.50", "debt": "0.00"},
        ],
    }
    empty = await client.get("/v1/users/nobody/balance")
    assert empty.json() == {"user_id": "nobody", "balances": []}


async def test_history_is_newest_first(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    for order_id in ("first", "second", "third"):
        assert (await accrue(client, order_id)).status_code == 200
        frozen_clock.advance(timedelta(minutes=1))
    assert (await accrue(client, "not-mine", user_id="u2")).status_code == 200
    history = await client.get("/v1/users/u1/accruals")
    assert history.status_code == 200
    body = history.json()
    assert body["user_id"] == "u1"
    assert [a["order_id"] for a in body["accruals"]] == ["third", "second", "first"]
    empty = await client.get("/v1/users/nobody/accruals")
    assert empty.json() == {"user_id": "nobody", "accruals": [], "entries": []}


async def test_concurrent_identical_accruals_make_one_row(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    responses = await asyncio.gather(*(accrue(client, "race") for _ in range(30)))
    assert [r.status_code for r in responses] == [200] * 30
    assert sum(r.json()["created"] for r in responses) == 1
    assert len({r.json()["accrual"]["created_at"] for r in responses}) == 1
    assert await count_rows(app) == 1
    assert created_metric(app) == 1


async def test_concurrent_different_accruals_one_wins(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    responses = await asyncio.gather(
        *(accrue(client, "race", amount=str(10 + i % 2)) for i in range(30))
    )
    assert_one_accrual_won(responses)
    assert await count_rows(app) == 1


async def test_the_fail_switch_refuses_every_accrual_and_writes_nothing(
    tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    config = dev_config(cashback_service={"fail_accruals": True})
    ctx = make_context("cashback", tmp_path, config=config, clock=frozen_clock)
    async with running_service(ctx) as (app, client):
        response = await accrue(client)
        assert response.status_code == 503
        assert response.json()["code"] == "cashback_unavailable"
        assert await count_rows(app) == 0
        assert created_metric(app) == 0
        # Reads still work.
        assert (await client.get("/v1/users/u1/balance")).json()["balances"] == []


async def test_ops_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ping")).json() == {"status": "ok", "service": "cashback"}
    assert (await client.get("/ready")).status_code == 200
    metrics = await client.get("/metrics")
    assert "qrpay_cashback_accruals_total" in metrics.text
