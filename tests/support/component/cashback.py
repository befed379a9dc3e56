from __future__ import annotations

from typing import Any

import httpx


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
