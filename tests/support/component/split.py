"""Guests splitting one bill through eda's share routes."""

from __future__ import annotations

from typing import Any

import httpx


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
    return await client.get(f"/v1/orders/{order_id}/shares/quote", params=choice)


async def begin(
    client: httpx.AsyncClient,
    order_id: str,
    share_id: str,
    price: str,
    *,
    tip: str = "0",
    **choice: Any,
) -> httpx.Response:
    """A guest's share at ``price``, what they were quoted for ``choice``."""
    body = {"share_id": share_id, "choice": choice, "amount": price, "tip": tip, "currency": "RUB"}
    return await client.post(f"/v1/orders/{order_id}/shares/start", json=body)


async def move(
    client: httpx.AsyncClient, order_id: str, share_id: str, step: str
) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/shares/{step}", json={"share_id": share_id})


async def pay_share(
    client: httpx.AsyncClient, order_id: str, share_id: str, price: str, **choice: Any
) -> dict[str, Any]:
    """Begin, claim the clear, complete: a share whose hold and clear succeeded."""
    started = await begin(client, order_id, share_id, price, **choice)
    assert started.status_code == 200, started.text
    for step in ("claim-clear", "complete"):
        answer = await move(client, order_id, share_id, step)
        assert answer.status_code == 200, answer.text
    ledger: dict[str, Any] = answer.json()
    return ledger
