"""The change feed over HTTP (SQLite, frozen clock): every status write is in it, once per
order as of its latest change, resumable by cursor, and a long-poll wakes on a write."""

import asyncio

import httpx
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import TTL, changes, create, create_body, start, statuses


async def test_creates_payment_moves_and_the_ttl_cancel_are_in_the_feed(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock
) -> None:
    a = (await create(client, "a"))["order"]["order_id"]
    b = (await create(client, "b"))["order"]["order_id"]
    first = await changes(client)
    assert statuses(first) == [(a, "WAITING"), (b, "WAITING")]
    assert first["more"] is False

    assert (await start(client, b)).status_code == 200
    moved = await changes(client, first["cursor"])
    assert statuses(moved) == [(b, "PAYMENT_IN_PROGRESS")]
    assert moved["changes"][0]["version"] == 2

    frozen_clock.advance(TTL + 1)
    assert await close_expired_orders(service_of(app, OrderService), TTL) == 1
    canceled = await changes(client, moved["cursor"])
    assert statuses(canceled) == [(a, "CANCELED")]
    # Nothing after the last change: the cursor stays where it was.
    empty = await changes(client, canceled["cursor"])
    assert empty == {"changes": [], "cursor": canceled["cursor"], "more": False}
    # From the start, each order once, as of its latest change, in the order they changed.
    assert statuses(await changes(client)) == [(b, "PAYMENT_IN_PROGRESS"), (a, "CANCELED")]


async def test_pages_resume_from_their_cursor(client: httpx.AsyncClient) -> None:
    made = [(await create(client, f"o{i}"))["order"]["order_id"] for i in range(5)]
    seen: list[str] = []
    cursor = ""
    while True:
        page = await changes(client, cursor, limit=2)
        seen += [c["order_id"] for c in page["changes"]]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert seen == made


async def test_the_tail_skips_what_was_there_before(client: httpx.AsyncClient) -> None:
    await create(client, "old")
    tail = (await client.get("/v1/orders/changes/tail")).json()["cursor"]
    assert (await changes(client, tail))["changes"] == []
    new = (await create(client, "new"))["order"]["order_id"]
    assert statuses(await changes(client, tail)) == [(new, "WAITING")]


async def test_a_long_poll_answers_when_an_order_changes(client: httpx.AsyncClient) -> None:
    tail = (await client.get("/v1/orders/changes/tail")).json()["cursor"]
    # Far longer than the test may take: only the write can end the wait.
    waiting = asyncio.create_task(changes(client, tail, wait_ms=60_000))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    order_id = (await create(client, "late"))["order"]["order_id"]
    async with asyncio.timeout(30):
        page = await waiting
    assert statuses(page) == [(order_id, "WAITING")]


async def test_a_long_poll_with_changes_answers_at_once(client: httpx.AsyncClient) -> None:
    order_id = (await create(client, "a"))["order"]["order_id"]
    async with asyncio.timeout(30):
        page = await changes(client, "", wait_ms=60_000)
    assert statuses(page) == [(order_id, "WAITING")]


async def test_a_bad_cursor_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orders/changes", params={"after": "nonsense"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_cursor"


async def test_one_restaurants_part_of_the_feed(client: httpx.AsyncClient) -> None:
    ours = (await create(client, "ours"))["order"]["order_id"]
    theirs = await client.post("/v1/orders", json={**create_body("theirs"), "client_id": "rest-2"})
    assert theirs.status_code == 200, theirs.text
    page = await changes(client, client_id="rest-1")
    assert statuses(page) == [(ours, "WAITING")]
    assert page["more"] is False
