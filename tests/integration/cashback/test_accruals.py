"""cashback's guarantees on real PostgreSQL, across two instances on one database."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from qrpay.cashback.repository import metadata
from tests.support.component.cashback import accrual, assert_one_accrual_won
from tests.support.postgres import metadata_diff, row_count

pytestmark = pytest.mark.postgres


def test_migrations_match_the_metadata(migrated_pg_url: str) -> None:
    assert metadata_diff(migrated_pg_url, metadata) == []


async def test_fifty_concurrent_accruals_on_two_instances_make_one_row(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    responses = await asyncio.gather(
        *(instances[i % 2].put("/v1/accruals/order-1", json=accrual()) for i in range(50))
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
            instances[i % 2].put("/v1/accruals/order-1", json=accrual(amount=str(10 + i % 3)))
            for i in range(30)
        )
    )
    assert_one_accrual_won(responses)
    assert await row_count(migrated_pg_url, "accruals") == 1


async def test_balances_are_exact(instances: list[httpx.AsyncClient]) -> None:
    for i in range(3):
        response = await instances[i % 2].put(f"/v1/accruals/dime-{i}", json=accrual(amount="0.10"))
        assert response.status_code == 200
    for i in range(7):
        response = await instances[0].put(
            f"/v1/accruals/cent-{i}", json=accrual(amount="0.01", currency="USD")
        )
        assert response.status_code == 200
    await instances[1].put("/v1/accruals/yen", json=accrual(amount="3", currency="JPY"))
    balance = (await instances[1].get("/v1/users/u1/balance")).json()
    assert balance["balances"] == [
        {"currency": "JPY", "amount": "3", "debt": "0"},
        {"currency": "RUB", "amount": "0.30", "debt": "0.00"},
        {"currency": "USD", "amount": "0.07", "debt": "0.00"},
    ]
    history = (await instances[0].get("/v1/users/u1/accruals")).json()
    assert len(history["accruals"]) == 11
