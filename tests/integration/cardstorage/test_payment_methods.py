"""cardstorage on real PostgreSQL, across two instances on one database."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from qrpay.cardstorage.repository import metadata
from tests.support.postgres import metadata_diff

pytestmark = pytest.mark.postgres


def card(user_id: str, token: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "token": token,
        "last4": "4242",
        "expiry_month": 12,
        "expiry_year": 2030,
    }


def test_migrations_match_the_metadata(migrated_pg_url: str) -> None:
    assert metadata_diff(migrated_pg_url, metadata) == []


async def test_concurrent_binds_of_one_id_by_two_users_give_it_to_one(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    responses = await asyncio.gather(
        *(
            instances[i % 2].put("/v1/payment-methods/card-1", json=card(f"u{i % 2}", f"t{i}"))
            for i in range(40)
        )
    )
    ok = [r for r in responses if r.status_code == 200]
    taken = [r for r in responses if r.status_code == 409]
    assert len(ok) + len(taken) == 40
    assert all(r.json()["code"] == "payment_method_taken" for r in taken)
    engine = create_async_engine(migrated_pg_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT user_id, token FROM payment_methods"))
            ).all()
    finally:
        await engine.dispose()
    assert len(rows) == 1
    owner, token = rows[0]
    # Only the owner's binds succeeded; the stored token is one of the owner's.
    assert len(ok) == 20
    assert int(token[1:]) % 2 == int(owner[1:])
    got = await instances[1].get("/v1/payment-methods/card-1", params={"user_id": owner})
    assert got.status_code == 200
    other = "u1" if owner == "u0" else "u0"
    hidden = await instances[0].get("/v1/payment-methods/card-1", params={"user_id": other})
    assert hidden.status_code == 404
