"""POST /orders/list from memory: the instance follows eda's feed (mocked here), reads eda
only for ids it does not know, and reads eda for everything once the feed lags."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.clock import FrozenClock
from tests.support.component.iiko_integration import (
    Following,
    MockedFeed,
    Started,
    change,
    list_orders,
    status_view,
)
from tests.support.metrics import sample_value
from tests.support.mockserver import MockedRoute, MockServer
from tests.support.waiting import eventually

# The frozen clock only moves when a test moves it: the lag is what the test says it is.
MAX_LAG_MS = 1000
NOT_FOUND_TTL_MS = 500


@pytest.fixture
async def following(
    start_following: Callable[..., AbstractAsyncContextManager[Following]],
) -> AsyncIterator[tuple[Started, IikoService, FrozenClock]]:
    limits = {"max_lag_ms": MAX_LAG_MS, "not_found_ttl_ms": NOT_FOUND_TTL_MS}
    async with start_following(**limits) as (ctx, client, service):
        assert isinstance(ctx.clock, FrozenClock)
        yield (ctx, client), service, ctx.clock


def eda_statuses(mockserver: MockServer, *views: dict[str, Any]) -> MockedRoute:
    return mockserver.json_handler("/v1/orders/statuses", {"orders": list(views)})


async def applied(service: IikoService, order_id: str, version: int) -> None:
    def seen() -> bool:
        view = service.memory.view(order_id)
        return view is not None and view.version == version

    await eventually(seen)
    assert seen()


async def poll(started: Started, *order_ids: str) -> list[str]:
    response = await list_orders(started[1], list(order_ids))
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["orders"]]


async def test_polls_are_answered_from_the_feed_without_eda(
    following: tuple[Started, IikoService, FrozenClock], feed: MockedFeed, mockserver: MockServer
) -> None:
    started, service, _clock = following
    statuses = eda_statuses(mockserver)
    feed.publish(change("a", "WAITING", 1), change("b", "PAYMENT_IN_PROGRESS", 2))
    feed.publish(change("a", "PAYED", 3), change("theirs", "PAYED", 1, client_id="rest-3"))
    await applied(service, "a", 3)
    await applied(service, "theirs", 1)

    assert await poll(started, "a", "b", "theirs", "a") == [
        "PAYED",
        "WAITING",
        "NOT_FOUND",
        "PAYED",
    ]
    assert statuses.times_called == 0


async def test_unknown_ids_are_read_from_eda_and_not_found_is_kept_briefly(
    following: tuple[Started, IikoService, FrozenClock], mockserver: MockServer
) -> None:
    started, _service, clock = following
    statuses = eda_statuses(mockserver, status_view("old", "WAITING", 4))

    assert await poll(started, "old", "nope") == ["WAITING", "NOT_FOUND"]
    assert statuses.next_call()["json"] == {"order_ids": ["old", "nope"]}
    # Both are in memory now: the found one until it changes, the missing one for a while.
    assert await poll(started, "old", "nope") == ["WAITING", "NOT_FOUND"]
    assert statuses.times_called == 0
    clock.advance(NOT_FOUND_TTL_MS / 1000 + 0.01)
    assert await poll(started, "old", "nope") == ["WAITING", "NOT_FOUND"]
    assert statuses.next_call()["json"] == {"order_ids": ["nope"]}


async def test_an_order_made_after_its_not_found_shows_up_from_the_feed(
    following: tuple[Started, IikoService, FrozenClock], feed: MockedFeed, mockserver: MockServer
) -> None:
    started, service, _clock = following
    eda_statuses(mockserver)
    assert await poll(started, "new") == ["NOT_FOUND"]
    feed.publish(change("new", "WAITING", 1))
    await applied(service, "new", 1)
    assert await poll(started, "new") == ["WAITING"]


async def test_when_the_feed_lags_polls_read_eda_and_never_go_backwards(
    following: tuple[Started, IikoService, FrozenClock], feed: MockedFeed, mockserver: MockServer
) -> None:
    started, service, clock = following
    feed.publish(change("a", "WAITING", 1), change("b", "PAYED", 3))
    await applied(service, "b", 3)
    statuses = eda_statuses(
        mockserver, status_view("a", "PAYED", 3), status_view("b", "WAITING", 2)
    )
    assert await poll(started, "a", "b") == ["WAITING", "PAYED"]
    assert statuses.times_called == 0

    # The feed stops answering and the lag passes the bound: eda is read for every id.
    feed.down = True
    clock.advance(MAX_LAG_MS / 1000 + 0.01)
    assert not service.follower.is_fresh()
    # a is newer in eda than in memory; eda's view of b is older than one already answered
    # (a lagging read), and the newer one in memory wins.
    assert await poll(started, "a", "b") == ["PAYED", "PAYED"]
    assert statuses.next_call()["json"] == {"order_ids": ["a", "b"]}

    # Back in step: memory answers again, with what the direct read taught it.
    feed.down = False
    await eventually(service.follower.is_fresh)
    assert await poll(started, "a", "b") == ["PAYED", "PAYED"]
    assert statuses.times_called == 0


async def test_a_follower_held_back_by_an_open_transaction_is_not_current(
    following: tuple[Started, IikoService, FrozenClock], feed: MockedFeed, mockserver: MockServer
) -> None:
    started, service, clock = following
    # eda has changes committed that it cannot serve yet (an older transaction is open):
    # reads come back with more, and a read that leaves changes behind proves nothing.
    feed.held_back = True
    reads = feed.reads
    clock.advance(MAX_LAG_MS / 1000 + 0.01)
    await eventually(lambda: feed.reads >= reads + 2)
    assert not service.follower.is_fresh()
    statuses = eda_statuses(mockserver, status_view("a", "WAITING", 1))
    assert await poll(started, "a") == ["WAITING"]
    assert statuses.times_called == 1

    feed.held_back = False
    await eventually(service.follower.is_fresh)
    assert service.follower.is_fresh()


async def test_the_follower_exports_when_it_was_last_current_and_its_limit(
    following: tuple[Started, IikoService, FrozenClock], feed: MockedFeed
) -> None:
    """What the feed-lag alert reads (deploy/prometheus): ``time() - current_as_of`` against
    ``max_lag``."""
    (_ctx, client), service, clock = following
    feed.publish(change("a", "WAITING", 1))
    await applied(service, "a", 1)
    await eventually(service.follower.is_fresh)
    exposition = (await client.get("/metrics")).text
    assert sample_value(exposition, "qrpay_feed_current_as_of_seconds") == clock.now().timestamp()
    assert sample_value(exposition, "qrpay_feed_max_lag_seconds") == MAX_LAG_MS / 1000

    # The feed stops answering: the exported time stays where the follower was last current.
    feed.down = True
    clock.advance(5)
    await eventually(lambda: not service.follower.is_fresh())
    exposition = (await client.get("/metrics")).text
    last_current = clock.now().timestamp() - 5
    assert sample_value(exposition, "qrpay_feed_current_as_of_seconds") == last_current
