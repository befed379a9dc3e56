"""cashback's guarantees on real PostgreSQL, across two instances on one database."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from qrpay.cashback.repository import metadata
from tests.support.postgres import metadata_diff, row_count

pytestmark = pytest.mark.postgres


def body(amount: str = "10.00", user_id: str = "u1", currency: str = "RUB") -> dict[str, str]:
    return {"user_id": user_id, "amount": amount, "currency": currency, "source": "rest-1"}


def test_migrations_match_the_metadata(migrated_pg_url: str) -> None:
    assert metadata_diff(migrated_pg_url, metadata) == []


async def test_fifty_concurrent_accruals_on_two_instances_make_one_row(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    responses = await asyncio.gather(
        *(instances[i % 2].put("/v1/accruals/order-1", json=body()) for i in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    assert sum(r.json()["created"] for r in responses) == 1
    assert len({r.json()["accrual"]["amount"] for r in responses}) == 1
    assert await row_count(migrated_pg_url, "accruals") == 1


async def test_concurrent_conflicting_accruals_one_wins(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    responses = await asyncio.gather(
        *(
            instances[i % 2].put("/v1/accruals/order-1", json=body(amount=str(10 + i % 3)))
            for i in range(30)
        )
    )
    created = [r for r in responses if r.status_code == 200 and r.json()["created"]]
    assert len(created) == 1
    winner = created[0].json()["accrual"]["amount"]
    for response in responses:
        if response.status_code == 200:
            assert response.json()["accrual"]["amount"] == winner
        else:
            assert (response.status_code, response.json()["code"]) == (409, "accrual_mismatch")
    assert await row_count(migrated_pg_url, "accruals") == 1


async def test_balances_are_exact(instances: list[httpx.AsyncClient]) -> None:
    for i in range(3):
        response = await instances[i % 2].put(f"/v1/accruals/dime-{i}", json=body("0.10"))
        assert response.status_code == 200
    for i in range(7):
        response = await instances[0].put(
            f"/v1/accruals/cent-{i}", json=body("0.01", currency="USD")
        )
        assert response.status_code == 200
    await instances[1].put("/v1/accruals/yen", json=body("3", currency="JPY"))
    balance = (await instances[1].get("/v1/users/u1/balance")).json()
    assert balance["balances"] == [
        {"currency": "JPY", "amount": "3"},
        {"currency": "RUB", "amount": "0.30"},
        {"currency": "USD", "amount": "0.07"},
    ]
    history = (await instances[0].get("/v1/users/u1/accruals")).json()
    assert len(history["accruals"]) == 11
