"""Guests splitting one bill: each pays a share through eda's payment routes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.component.eda import move, start


def table_bill(*lines: str, total: str | None = None) -> dict[str, Any]:
    amounts = lines or ("100",)
    return {
        "currency": "RUB",
        "amount": total or str(sum(float(a) for a in amounts)),
        "elements": [{"name": f"Dish {i}", "amount": a} for i, a in enumerate(amounts)],
    }


async def open_table(client: httpx.AsyncClient, *lines: str, internal: str = "table-7") -> str:
    body = {"client_id": "rest-1", "internal_order_id": internal, "bill": table_bill(*lines)}
    response = await client.post("/v1/orders", json=body)
    assert response.status_code == 200, response.text
    order_id: str = response.json()["order"]["order_id"]
    return order_id


async def quote(client: httpx.AsyncClient, order_id: str, **choice: Any) -> httpx.Response:
    return await client.get(f"/v1/orders/{order_id}/payments/quote", params=choice)


async def begin(
    client: httpx.AsyncClient,
    order_id: str,
    payment_id: str,
    price: str,
    *,
    tip: str = "0",
    **choice: Any,
) -> httpx.Response:
    """A guest's payment at ``price``, what they were quoted for ``choice``."""
    return await start(client, order_id, payment_id, price, tip=tip, choice=choice)


async def pay_share(
    client: httpx.AsyncClient, order_id: str, payment_id: str, price: str, **choice: Any
) -> dict[str, Any]:
    """Begin and complete: a payment whose hold and clear succeeded."""
    started = await begin(client, order_id, payment_id, price, **choice)
    assert started.status_code == 200, started.text
    answer = await move(client, order_id, payment_id, "complete")
    assert answer.status_code == 200, answer.text
    ledger: dict[str, Any] = answer.json()
    return ledger
