from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from qrpay.cashback.repository import reversals


def accrual(user_id: str = "u1", amount: str = "10.00", **overrides: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "amount": amount,
        "currency": "RUB",
        "source": "rest-1",
        **overrides,
    }


async def accrue(client: httpx.AsyncClient, order_id: str = "o1", **body: Any) -> httpx.Response:
    return await client.put(f"/v1/accruals/{order_id}", json=accrual(**body))


def assert_one_accrual_won(responses: list[httpx.Response]) -> None:
    """Of concurrent accruals of one order with different amounts, one was created; every other
    request got it back (200) or was refused as a mismatch (409)."""
    created = [r for r in responses if r.status_code == 200 and r.json()["created"]]
    assert len(created) == 1
    winner = created[0].json()["accrual"]["amount"]
    for response in responses:
        if response.status_code == 200:
            assert response.json()["accrual"]["amount"] == winner
        else:
            assert (response.status_code, response.json()["code"]) == (409, "accrual_mismatch")


async def reverse(
    client: httpx.AsyncClient,
    accrual_key: str = "o1",
    reversal_id: str = "o1-refund.1",
    amount: str = "1.00",
    currency: str = "RUB",
) -> httpx.Response:
    return await client.put(
        f"/v1/cashback/accruals/{accrual_key}/reversals/{reversal_id}",
        json={"amount": amount, "currency": currency},
    )


async def spend(app: FastAPI, client: httpx.AsyncClient, amount: str, user_id: str = "u1") -> None:
    """Lower ``user_id``'s RUB balance by ``amount`` as a spend elsewhere would (this stand-in
    spends none, so on its own its balance covers every reversal): a reversal row taking
    ``amount`` from the user against another user's accrual, a row the service never writes."""
    response = await accrue(client, f"spend-source-{user_id}", user_id="spender", amount="1000")
    assert response.status_code == 200, response.text
    async with app.state.db.write() as session:
        await session.execute(
            reversals.insert().values(
                reversal_id=f"spend-{user_id}-{amount}",
                accrual_key=f"spend-source-{user_id}",
                user_id=user_id,
                amount=amount,
                currency="RUB",
                taken=amount,
                debt="0.00",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
