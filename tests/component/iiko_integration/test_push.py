"""The POS long-poll (GET /orders/changes): the key's restaurants only, answered at once when
the restaurant has changes, else when the follower sees one of its changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from qrpay.iiko_integration.service import IikoService
from tests.support.component.iiko_integration import (
    HEADERS,
    Following,
    MockedFeed,
    change,
    cursor_of,
)
from tests.support.waiting import eventually


@pytest.fixture
async def following(
    start_following: Callable[..., AbstractAsyncContextManager[Following]],
) -> AsyncIterator[tuple[httpx.AsyncClient, IikoService]]:
    async with start_following() as (_ctx, client, service):
        yield client, service


@pytest.fixture
def client(following: tuple[httpx.AsyncClient, IikoService]) -> httpx.AsyncClient:
    """The instance's client, for a test that looks at its answers only."""
    return following[0]


async def pos_changes(
    client: httpx.AsyncClient, headers: dict[str, str] = HEADERS, **params: Any
) -> httpx.Response:
    return await client.get("/orders/changes", params=params, headers=headers)


async def test_push_is_scoped_to_the_keys_restaurants(
    client: httpx.AsyncClient, feed: MockedFeed
) -> None:
    # The demo key is for rest-1 and rest-2.
    refused = await pos_changes(client, client_id="rest-3", after="c", wait_ms=0)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_client")
    anonymous = await pos_changes(client, headers={}, client_id="rest-1", after="c", wait_ms=0)
    assert anonymous.status_code == 401
    assert feed.restaurant_reads == []


async def test_a_cursor_older_than_the_buffer_is_caught_up_from_eda(
    client: httpx.AsyncClient, feed: MockedFeed
) -> None:
    first, second = change("a", "PAYMENT_IN_PROGRESS", 2), change("b", "PAYED", 3)
    feed.restaurant_pages["rest-1"] = [
        {"changes": [first, second], "cursor": cursor_of(second), "more": False}
    ]
    # The instance followed the feed from its tail ("10:"): "1:x" is before what it holds.
    async with asyncio.timeout(30):
        response = await pos_changes(client, client_id="rest-1", after="1:x", wait_ms=30_000)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "orders": [{"id": "a", "status": "WAITING"}, {"id": "b", "status": "PAYED"}],
        "cursor": cursor_of(second),
    }
    assert feed.restaurant_reads == [
        {"after": "1:x", "limit": "100", "wait_ms": "0", "client_id": "rest-1"}
    ]


async def test_a_malformed_cursor_is_refused(client: httpx.AsyncClient, feed: MockedFeed) -> None:
    response = await pos_changes(client, client_id="rest-1", after="nope", wait_ms=0)
    assert (response.status_code, response.json()["code"]) == (400, "bad_cursor")


async def test_a_waiting_poll_is_answered_from_the_followed_feed_without_reading_eda(
    following: tuple[httpx.AsyncClient, IikoService], feed: MockedFeed
) -> None:
    client, service = following
    # Far longer than the test may take: only the change can end the wait.
    waiting = asyncio.create_task(pos_changes(client, client_id="rest-1", wait_ms=30_000))
    await eventually(lambda: service.hub.restaurants_changed.has_waiters("rest-1"))
    # Another restaurant's change does not wake it; its own does.
    feed.publish(change("x", "PAYED", 2, client_id="rest-2"))
    await eventually(lambda: service.memory.view("x") is not None)
    assert not waiting.done()
    assert service.hub.restaurants_changed.has_waiters("rest-1")
    paid = change("a", "PAYED", 3)
    feed.publish(paid)
    async with asyncio.timeout(30):
        response = await waiting
    assert response.json() == {
        "orders": [{"id": "a", "status": "PAYED"}],
        "cursor": cursor_of(paid),
    }
    # The next poll resumes from that cursor, from memory too: eda was never asked.
    again = await pos_changes(client, client_id="rest-1", after=cursor_of(paid), wait_ms=0)
    assert again.json() == {"orders": [], "cursor": cursor_of(paid)}
    assert feed.restaurant_reads == []
