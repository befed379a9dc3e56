"""Binding, listing and reading payment methods over HTTP (SQLite, frozen clock)."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from qrpay.cardstorage.repository import payment_methods
from qrpay.kernel.clock import FrozenClock
from tests.support.component.cardstorage import card


async def bind(client: httpx.AsyncClient, method_id: str = "card-1", **body: Any) -> dict[str, Any]:
    response = await client.put(f"/v1/payment-methods/{method_id}", json=card(**body))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_bind_then_list_and_get(client: httpx.AsyncClient) -> None:
    public = await bind(client)
    assert public == {
        "id": "card-1",
        "type": "card",
        "system": "visa",
        "mask": "•••• 4242",
        "expiry": "12/30",
        "available": True,
    }
    listed = await client.get("/v1/payment-methods", params={"user_id": "u1"})
    assert listed.status_code == 200
    assert listed.json() == {"payment_methods": [public]}

    got = await client.get("/v1/payment-methods/card-1", params={"user_id": "u1"})
    assert got.status_code == 200
    assert got.json() == {**public, "user_id": "u1", "token": "tok_visa_ok"}


async def test_list_shows_only_the_users_methods_without_tokens(client: httpx.AsyncClient) -> None:
    await bind(client, "a", user_id="u1")
    await bind(client, "b", user_id="u1", last4="0005", system="mastercard")
    await bind(client, "c", user_id="u2")
    listed = (await client.get("/v1/payment-methods", params={"user_id": "u1"})).json()
    assert [m["id"] for m in listed["payment_methods"]] == ["a", "b"]
    assert all("token" not in m and "user_id" not in m for m in listed["payment_methods"])
    empty = await client.get("/v1/payment-methods", params={"user_id": "nobody"})
    assert empty.json() == {"payment_methods": []}


async def test_rebind_replaces_and_keeps_one_row(client: httpx.AsyncClient, app: FastAPI) -> None:
    await bind(client)
    replaced = await bind(client, token="tok_new", last4="1111", available=False)
    assert replaced["mask"] == "•••• 1111"
    assert replaced["available"] is False
    got = (await client.get("/v1/payment-methods/card-1", params={"user_id": "u1"})).json()
    assert got["token"] == "tok_new"
    async with app.state.db.read() as session:
        rows = (await session.execute(select(payment_methods))).all()
    assert len(rows) == 1


async def test_another_users_id_is_taken(client: httpx.AsyncClient) -> None:
    await bind(client, user_id="u1")
    response = await client.put("/v1/payment-methods/card-1", json=card("u2", token="tok_u2"))
    assert response.status_code == 409
    assert response.json()["code"] == "payment_method_taken"
    # Nothing changed for the owner.
    got = (await client.get("/v1/payment-methods/card-1", params={"user_id": "u1"})).json()
    assert got["token"] == "tok_visa_ok"


async def test_unknown_or_foreign_method_is_the_same_404(client: httpx.AsyncClient) -> None:
    await bind(client, user_id="u1")
    foreign = await client.get("/v1/payment-methods/card-1", params={"user_id": "u2"})
    unknown = await client.get("/v1/payment-methods/nope", params={"user_id": "u2"})
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "payment_method_not_found"


@pytest.mark.parametrize("pan", ["4242424242424242", "4242 4242 4242 4242", "4111111111111"])
async def test_a_card_number_is_refused_and_not_stored(
    client: httpx.AsyncClient, app: FastAPI, pan: str
) -> None:
    response = await client.put("/v1/payment-methods/card-1", json=card(token=pan))
    assert response.status_code == 400
    assert response.json()["code"] == "card_number_not_allowed"
    assert pan not in response.text
    async with app.state.db.read() as session:
        assert (await session.execute(select(payment_methods))).first() is None


async def test_expired_cards_are_not_available(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    # The frozen clock starts on 2026-01-01.
    await bind(client, "old", expiry_month=12, expiry_year=2025)
    await bind(client, "this-month", expiry_month=1, expiry_year=2026)
    listed = (await client.get("/v1/payment-methods", params={"user_id": "u1"})).json()
    shown = {m["id"]: (m["expiry"], m["available"]) for m in listed["payment_methods"]}
    assert shown == {"old": ("12/25", False), "this-month": ("01/26", True)}

    frozen_clock.advance(timedelta(days=31))
    got = (await client.get("/v1/payment-methods/this-month", params={"user_id": "u1"})).json()
    assert got["available"] is False


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (card(last4="42"), "invalid_request"),
        (card(expiry_month=13), "invalid_request"),
        (card(type="crypto"), "invalid_request"),
        (card(pan="4242424242424242"), "unknown_field"),
        ({"user_id": "u1", "token": "t"}, "missing_field"),
    ],
)
async def test_invalid_bodies_are_400(client: httpx.AsyncClient, body: dict, code: str) -> None:
    response = await client.put("/v1/payment-methods/card-1", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_bad_id_and_missing_user_are_400(client: httpx.AsyncClient) -> None:
    bad_id = await client.put("/v1/payment-methods/a%20b", json=card())
    assert bad_id.status_code == 400
    missing = await client.get("/v1/payment-methods")
    assert missing.status_code == 400
    assert missing.json()["code"] == "missing_field"


async def test_ops_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ping")).json() == {"status": "ok", "service": "cardstorage"}
    assert (await client.get("/ready")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/payment-methods/{method_id}" in spec["paths"]
