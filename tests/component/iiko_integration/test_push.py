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
from tests.support.component.iiko_integration import HEADERS, Following, MockedFeed, change
from tests.support.waiting import eventually


@pytest.fixture
async def following(
    start_following: Callable[..., AbstractAsyncContextManager[Following]],
) -> AsyncIterator[tuple[httpx.AsyncClient, IikoService]]:
    async with start_following() as (_ctx, client, service):
        yield client, service


async def pos_changes(
    client: httpx.AsyncClient, headers: dict[str, str] = HEADERS, **params: Any
) -> httpx.Response:
    return await client.get("/orders/changes", params=params, headers=headers)


async def test_push_is_scoped_to_the_keys_restaurants(
    following: tuple[httpx.AsyncClient, IikoService], feed: MockedFeed
) -> None:
    client, _service = following
    # The demo key is for rest-1 and rest-2.
    refused = await pos_changes(client, client_id="rest-3", after="c", wait_ms=0)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_client")
    anonymous = await pos_changes(client, headers={}, client_id="rest-1", after="c", wait_ms=0)
    assert anonymous.status_code == 401
    assert feed.restaurant_reads == []


async def test_changes_there_already_are_answered_at_once(
    following: tuple[httpx.AsyncClient, IikoService], feed: MockedFeed
) -> None:
    client, _service = following
    feed.restaurant_pages["rest-1"] = [
        {
            "changes": [change("a", "PAYMENT_IN_PROGRESS", 2), change("b", "PAYED", 3)],
            "cursor": "r1",
            "more": False,
        }
    ]
    async with asyncio.timeout(30):
        response = await pos_changes(client, client_id="rest-1", after="r0", wait_ms=30_000)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "orders": [{"id": "a", "status": "WAITING"}, {"id": "b", "status": "PAYED"}],
        "cursor": "r1",
    }
    assert feed.restaurant_reads == [
        {"after": "r0", "limit": "100", "wait_ms": "0", "client_id": "rest-1"}
    ]


async def test_a_waiting_poll_answers_when_the_follower_sees_its_restaurant_change(
    following: tuple[httpx.AsyncClient, IikoService], feed: MockedFeed
) -> None:
    client, service = following
    # Far longer than the test may take: only the change can end the wait.
    waiting = asyncio.create_task(pos_changes(client, client_id="rest-1", wait_ms=30_000))
    await eventually(lambda: len(feed.restaurant_reads) == 1)
    # Another restaurant's change does not wake it; its own does.
    feed.publish(change("x", "PAYED", 2, client_id="rest-2"))
    await eventually(lambda: service.memory.view("x") is not None)
    # Woken by mistake, it would read eda again within moments; a slow box only makes this
    # check weaker, never wrong.
    await eventually(lambda: len(feed.restaurant_reads) > 1, timeout=0.3)
    assert not waiting.done()
    assert len(feed.restaurant_reads) == 1
    feed.restaurant_pages["rest-1"] = [
        {"changes": [change("a", "PAYED", 3)], "cursor": "r9", "more": False}
    ]
    feed.publish(change("a", "PAYED", 3))
    async with asyncio.timeout(30):
        response = await waiting
    assert response.json() == {"orders": [{"id": "a", "status": "PAYED"}], "cursor": "r9"}
    # Started from the tail; the read after the wake resumed from the same cursor.
    assert [read["after"] for read in feed.restaurant_reads] == ["t0", "t0"]
