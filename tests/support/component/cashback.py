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
