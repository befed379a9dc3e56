"""The POS's WebSocket stream (GET /orders/stream), served on a real port against a mocked
eda feed: scoped to the key's restaurants, resumable by cursor, a heartbeat, slow
consumers closed, and one feed read per instance however many POS are connected."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from qrpay.iiko_integration.app import YOUNG_GENERATION
from qrpay.iiko_integration.push import Heartbeats, Subscription
from qrpay.iiko_integration.service import IikoService
from qrpay.iiko_integration.stream import CLOSE_CLIENT_SILENT, CLOSE_SLOW_CONSUMER
from qrpay.kernel.service import ServiceContext, service_of
from tests.support.component.iiko_integration import (
    API_KEY,
    TAIL,
    MockedFeed,
    change,
    cursor_of,
)
from tests.support.mockserver import MockServer
from tests.support.services import dev_config, running_service, served
from tests.support.waiting import eventually

Streaming = tuple[str, IikoService, aiohttp.ClientSession]


def key_headers() -> dict[str, str]:
    # A dict of its own: the shared HEADERS is handed to schemathesis, which adds to it.
    return {"X-API-Key": API_KEY}


@pytest.fixture
def start_streaming(
    iiko_context: Callable[..., ServiceContext], feed: MockedFeed
) -> Callable[..., AbstractAsyncContextManager[Streaming]]:
    @asynccontextmanager
    async def start(*, phase: float = 0.0, **push: Any) -> AsyncIterator[Streaming]:
        """``phase``: where in the first period every connection's first ping comes (0: a
        whole period after connecting, so no test sees a ping it did not ask for)."""
        config = dev_config(feed={"wait_ms": 20, "retry_ms": 10}, push=push)
        ctx = iiko_context(config)
        ctx.run_background_jobs = True
        async with (
            running_service(ctx) as (app, _client),
            served(app) as base_url,
            aiohttp.ClientSession() as session,
        ):
            service = service_of(app, IikoService)
            service.heartbeats = Heartbeats(
                lambda: service.push_config().heartbeat_ms / 1000, phase=lambda: phase
            )
            await eventually(service.follower.is_fresh)
            assert service.follower.is_fresh()
            yield base_url.replace("http", "ws", 1), service, session

    return start


@pytest.fixture
async def streaming(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]],
) -> AsyncIterator[Streaming]:
    async with start_streaming() as started:
        yield started


def connect(started: Streaming, headers: dict[str, str] | None = None, **params: str) -> Any:
    base_url, _service, session = started
    return session.ws_connect(
        f"{base_url}/orders/stream",
        headers=key_headers() if headers is None else headers,
        params=params,
    )


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(30):
        message = await ws.receive_json()
    assert isinstance(message, dict)
    return message


async def connected(service: IikoService, count: int) -> None:
    await eventually(lambda: service.hub.connections == count)
    assert service.hub.connections == count


async def test_only_the_keys_restaurants_arrive_and_a_wrong_key_is_refused(
    streaming: Streaming, feed: MockedFeed
) -> None:
    _url, service, _session = streaming
    for headers, params, status in [
        ({"X-API-Key": "not-a-key-0123456789"}, {}, 401),
        ({}, {}, 401),
        (key_headers(), {"client_id": "rest-3"}, 403),  # the demo key: rest-1 and rest-2
        (key_headers(), {"after": "nope"}, 400),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with connect(streaming, headers, **params):
                pass
        assert refused.value.status == status
    async with connect(streaming) as ws:
        await connected(service, 1)
        other, mine = change("x", "PAYED", 1, client_id="rest-3"), change("a", "PAYED", 2)
        feed.publish(other, mine)
        second = change("b", "CANCELED", 3, client_id="rest-2")
        feed.publish(second)
        # In feed order: had rest-3's change been sent, it would have come first.
        assert await receive(ws) == {
            "type": "change",
            "id": "a",
            "client_id": "rest-1",
            "status": "PAYED",
            "cursor": cursor_of(mine),
        }
        assert (await receive(ws))["id"] == "b"
    # A restaurant filter narrows the key's restaurants further.
    async with connect(streaming, client_id="rest-2", after=TAIL) as ws:
        assert await receive(ws) == {
            "type": "change",
            "id": "b",
            "client_id": "rest-2",
            "status": "CANCELED",
            "cursor": cursor_of(second),
        }


async def test_a_dropped_connection_resumes_from_its_cursor_without_gaps_or_repeats(
    streaming: Streaming, feed: MockedFeed
) -> None:
    _url, service, _session = streaming
    a, b, c, d = (change(name, "PAYED", n) for n, name in enumerate("abcd", start=1))
    async with connect(streaming) as ws:
        await connected(service, 1)
        feed.publish(a, b)
        assert (await receive(ws))["id"] == "a"
        cursor = (await receive(ws))["cursor"]
    await connected(service, 0)
    # Committed while the POS was away.
    feed.publish(c)
    await eventually(lambda: service.memory.view("c") is not None)
    async with connect(streaming, after=cursor) as ws:
        await connected(service, 1)
        feed.publish(d)
        received = [await receive(ws), await receive(ws)]
    assert [m["id"] for m in received] == ["c", "d"]
    assert [m["cursor"] for m in received] == [cursor_of(c), cursor_of(d)]
    # All from the instance's buffer: eda was not read for it.
    assert feed.restaurant_reads == []


async def test_a_cursor_older_than_the_buffer_is_caught_up_from_eda_then_live(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]], feed: MockedFeed
) -> None:
    early, late = change("e", "PAYED", 1), change("l", "CANCELED", 3)
    async with start_streaming(buffer_size=1) as started:
        _url, service, _session = started
        feed.restaurant_pages["rest-1"] = [
            {"changes": [early], "cursor": cursor_of(early), "more": False}
        ]
        async with connect(started, client_id="rest-1", after="1:old") as ws:
            assert (await receive(ws))["id"] == "e"
            await connected(service, 1)
            feed.publish(late)
            assert (await receive(ws))["id"] == "l"
    assert [read["after"] for read in feed.restaurant_reads] == ["1:old"]


async def test_a_heartbeat_pings_a_quiet_connection_and_a_silent_pos_is_closed(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]], feed: MockedFeed
) -> None:
    async with start_streaming(heartbeat_ms=50, client_timeout_ms=400) as started:
        _url, service, _session = started
        async with connect(started) as ws:
            ping = await receive(ws)
            # Where to resume: the instance's position in the feed.
            assert ping == {"type": "ping", "cursor": TAIL}
            await ws.send_json({"type": "pong"})
            assert (await receive(ws))["type"] == "ping"
            # Never answering again: the server gives up on this POS.
            async with asyncio.timeout(30):
                while (message := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    assert message.json()["type"] == "ping"
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == CLOSE_CLIENT_SILENT
        await connected(service, 0)


async def test_a_change_goes_out_at_once_and_the_next_ping_carries_its_cursor(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]], feed: MockedFeed
) -> None:
    async with start_streaming(heartbeat_ms=600_000) as started:
        _url, service, _session = started
        async with connect(started) as ws:
            await connected(service, 1)
            paid = change("a", "PAYED", 1)
            feed.publish(paid)
            # Not held for a heartbeat ten minutes away.
            assert (await receive(ws))["cursor"] == cursor_of(paid)
    async with start_streaming(heartbeat_ms=50) as started:
        _url, service, _session = started
        async with connect(started) as ws:
            assert await receive(ws) == {"type": "ping", "cursor": TAIL}
            await ws.send_json({"type": "pong"})
            paid = change("b", "PAYED", 2)
            feed.publish(paid)
            while (message := await receive(ws))["type"] == "ping":
                await ws.send_json({"type": "pong"})
            assert message["cursor"] == cursor_of(paid)
            # Quiet again: the pings resume from where the change left the POS.
            assert await receive(ws) == {"type": "ping", "cursor": cursor_of(paid)}


async def test_the_instances_one_heartbeat_timer_drops_closed_streams(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]],
) -> None:
    async with start_streaming(heartbeat_ms=50, phase=0.5) as started:
        _url, service, _session = started
        async with connect(started) as first, connect(started) as second:
            await connected(service, 2)
            assert len(service.heartbeats) == 2
            for ws in (first, second):
                assert (await receive(ws))["type"] == "ping"
        await connected(service, 0)
        # Their entries go when they come up, without a ping to a closed socket.
        await eventually(lambda: len(service.heartbeats) == 0)
        assert len(service.heartbeats) == 0


async def test_a_slow_consumer_is_closed_and_resumes_from_its_cursor(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]], feed: MockedFeed
) -> None:
    burst = [change(f"o{n}", "PAYED", n) for n in range(1, 6)]
    async with start_streaming(queue_size=2) as started:
        _url, service, _session = started
        async with connect(started) as ws:
            await connected(service, 1)
            # Five changes at once for a queue of two: the POS is too far behind.
            feed.publish(*burst)
            async with asyncio.timeout(30):
                message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == CLOSE_SLOW_CONSUMER
        async with connect(started, after=TAIL) as ws:
            received = [await receive(ws) for _ in burst]
        assert [m["id"] for m in received] == [f"o{n}" for n in range(1, 6)]


async def test_many_connections_share_the_instances_one_feed_read(
    streaming: Streaming, feed: MockedFeed, mockserver: MockServer
) -> None:
    _url, service, _session = streaming
    tails = mockserver.requests_by_path["/v1/orders/changes/tail"]
    count = 50
    sockets = [await connect(streaming).__aenter__() for _ in range(count)]
    try:
        await connected(service, count)
        paid = change("a", "PAYED", 1)
        feed.publish(paid)
        for ws in sockets:
            assert (await receive(ws))["cursor"] == cursor_of(paid)
    finally:
        for ws in sockets:
            await ws.close()
    # Nothing but the follower read eda: no read of the feed, nor of its tail, per POS.
    assert feed.restaurant_reads == []
    assert mockserver.requests_by_path["/v1/orders/changes/tail"] == tails


async def by_label(started: Streaming, prefix: str) -> dict[str, float]:
    """The samples of the instance's /metrics starting with ``prefix`` (up to a label's
    value), by that value."""
    base_url, _service, session = started
    async with session.get(base_url.replace("ws", "http", 1) + "/metrics") as answer:
        text = await answer.text()
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def subscribers(started: Streaming) -> dict[str, float]:
    """The instance's push subscribers gauge by kind, as a scrape of /metrics shows it."""
    return await by_label(started, 'qrpay_pos_push_subscribers{kind="')


async def test_the_subscribers_gauge_counts_open_streams_and_waiting_long_polls(
    streaming: Streaming, feed: MockedFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, service, session = streaming
    closed = asyncio.Event()
    close_stream = service.close_stream

    def close_and_tell(subscription: Subscription) -> None:
        close_stream(subscription)
        closed.set()

    monkeypatch.setattr(service, "close_stream", close_and_tell)
    assert await subscribers(streaming) == {"stream": 0, "long_poll": 0}
    async with connect(streaming):
        # Counted before the handshake is answered.
        assert await subscribers(streaming) == {"stream": 1, "long_poll": 0}
    async with asyncio.timeout(30):
        await closed.wait()
    assert await subscribers(streaming) == {"stream": 0, "long_poll": 0}

    # A long-poll is counted from its start: by the time it takes its wake-up ticket.
    waiting = asyncio.Event()
    ticket = service.hub.restaurants_changed.ticket

    def ticket_and_tell(key: Hashable = None) -> asyncio.Event:
        waiting.set()
        return ticket(key)

    monkeypatch.setattr(service.hub.restaurants_changed, "ticket", ticket_and_tell)

    async def long_poll() -> Any:
        async with session.get(
            base_url.replace("ws", "http", 1) + "/orders/changes",
            params={"client_id": "rest-1", "wait_ms": "30000"},
            headers=key_headers(),
        ) as answer:
            return await answer.json()

    polling = asyncio.create_task(long_poll())
    async with asyncio.timeout(30):
        await waiting.wait()
    assert await subscribers(streaming) == {"stream": 0, "long_poll": 1}
    feed.publish(change("a", "PAYED", 1))
    async with asyncio.timeout(30):
        assert (await polling)["orders"] == [{"id": "a", "status": "PAYED"}]
    assert await subscribers(streaming) == {"stream": 0, "long_poll": 0}


async def refused_streams(started: Streaming) -> dict[str, float]:
    """``qrpay_pos_streams_refused_total`` by reason, from the instance's /metrics."""
    return await by_label(started, 'qrpay_pos_streams_refused_total{reason="')


async def refused_status(started: Streaming) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with connect(started):
            pass
    return refused.value.status


async def test_one_key_opens_at_most_its_streams_and_is_refused_at_the_handshake(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]],
) -> None:
    """Issue 20: a key opened streams without bound (file descriptors, memory)."""
    async with start_streaming(max_streams_per_key=2) as started:
        _url, service, _session = started
        async with connect(started), connect(started):
            await connected(service, 2)
            assert await refused_status(started) == 429
            assert await refused_status(started) == 429
            assert (await refused_streams(started))["per_key"] == 2
            assert service.hub.connections == 2
        await eventually(lambda: service.stream_slots.open == 0)
        # Closed streams give their slots back.
        async with connect(started):
            await connected(service, 1)


async def test_the_instance_opens_at_most_its_streams(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]],
) -> None:
    async with start_streaming(max_streams=1) as started:
        _url, service, _session = started
        async with connect(started):
            await connected(service, 1)
            assert await refused_status(started) == 503
            assert (await refused_streams(started))["instance"] == 1


async def test_the_instance_serves_with_a_larger_young_generation_and_gives_it_back(
    start_streaming: Callable[..., AbstractAsyncContextManager[Streaming]],
) -> None:
    before = gc.get_threshold()
    async with start_streaming():
        assert gc.get_threshold() == (YOUNG_GENERATION, *before[1:])
    assert gc.get_threshold() == before
