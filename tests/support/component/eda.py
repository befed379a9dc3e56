from typing import Any

import httpx

TTL = 3600


def bill(amount: str = "100", element: str = "120", currency: str = "RUB") -> dict[str, Any]:
    return {
        "currency": currency,
        "amount": amount,
        "elements": [{"name": "Borscht", "amount": element}],
    }


def create_body(internal: str = "iiko-42", **bill_args: str) -> dict[str, Any]:
    return {"client_id": "rest-1", "internal_order_id": internal, "bill": bill(**bill_args)}


async def create(
    client: httpx.AsyncClient, internal: str = "iiko-42", **bill_args: str
) -> dict[str, Any]:
    response = await client.post("/v1/orders", json=create_body(internal, **bill_args))
    assert response.status_code == 200, response.text
    return response.json()


async def start(
    client: httpx.AsyncClient,
    order_id: str,
    payment_id: str = "pay-1",
    amount: str = "100",
    *,
    tip: str = "0",
    currency: str = "RUB",
    **fields: Any,
) -> httpx.Response:
    """A payment at ``amount``, by default the whole bill (way ``rest``); ``choice``,
    ``token``, ``request_hash`` and ``bill_version`` go into the body as given."""
    body = {
        "payment_id": payment_id,
        "choice": {"way": "rest"},
        "amount": amount,
        "tip": tip,
        "currency": currency,
        **fields,
    }
    return await client.post(f"/v1/orders/{order_id}/payments/start", json=body)


async def move(
    client: httpx.AsyncClient, order_id: str, payment_id: str, step: str
) -> httpx.Response:
    """begin-rollback, fail or complete."""
    return await client.post(
        f"/v1/orders/{order_id}/payments/{step}", json={"payment_id": payment_id}
    )


def without_replayed(answer: httpx.Response) -> dict[str, Any]:
    """A start's answer less whether it repeated an earlier one."""
    body: dict[str, Any] = answer.json()
    body.pop("replayed", None)
    return body


async def changes(client: httpx.AsyncClient, after: str = "", **params: Any) -> dict[str, Any]:
    """A page of eda's change feed after the cursor ``after``."""
    response = await client.get("/v1/orders/changes", params={"after": after, **params})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def statuses(page: dict[str, Any]) -> list[tuple[str, str]]:
    """(order id, status) of each change of a feed page."""
    return [(c["order_id"], c["status"]) for c in page["changes"]]


async def ledger(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    """The order's ledger: its payments and refunds, as payments-eda reads it."""
    answer = await client.get(f"/v1/orders/{order_id}/payments")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
