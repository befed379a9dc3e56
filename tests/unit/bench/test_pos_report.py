"""bench-pos's own parts: the staleness probe, the targets beside the figures, CPU per request."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiohttp import web

from qrpay_tools.bench.harness import WrkResult
from qrpay_tools.bench.pos import cpu_line, fixed_target, probe_staleness, soak
from tests.support.mockserver import MockServer


class Stream:
    """The mocked POS stream: each connection's query, and a way to send every open one a
    change. A connection stays open until the POS closes it, or ``drop_first`` closes the
    first one after a ping."""

    def __init__(self, mockserver: MockServer, *, drop_first: bool = False) -> None:
        self.connections: list[dict[str, str]] = []
        self.drop_first = drop_first
        self._open: set[web.WebSocketResponse] = set()
        self.live = asyncio.Event()  # a connection is open that changes are sent to
        self.sent = 0
        mockserver.handler("/orders/stream", "GET")(self._serve)

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        self.connections.append(dict(request.query))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.drop_first and len(self.connections) == 1:
            await ws.send_json({"type": "ping", "cursor": "5:"})
            await ws.receive()  # the pong
            await ws.close()
            return ws
        self._open.add(ws)
        self.live.set()
        async for _message in ws:
            pass
        self._open.discard(ws)
        return ws

    async def send_paid(self, order_id: str) -> None:
        """Sent on the connection that is live; after a drop, on the next one (a change made
        while the POS was away would need the server's catch-up, which this mock does not do)."""
        await self.live.wait()
        self.sent += 1
        change: dict[str, Any] = {
            "type": "change",
            "id": order_id,
            "client_id": "rest-1",
            "status": "PAYED",
            "cursor": f"{10 + self.sent}:{order_id}",
        }
        for ws in list(self._open):
            await ws.send_json(change)


async def test_staleness_counts_each_change_once_the_poll_and_the_stream_show_it(
    mockserver: MockServer,
) -> None:
    moves: list[tuple[str, str]] = []
    polls_until_paid = {"o-1": 3, "o-2": 1}
    stream = Stream(mockserver)

    def payment_move(order_id: str, step: str) -> None:
        async def record(_request: web.Request) -> dict[str, str]:
            moves.append((order_id, step))
            if step == "complete":
                await stream.send_paid(order_id)
            return {"order_id": order_id}

        mockserver.handler(f"/v1/orders/{order_id}/payments/{step}")(record)

    for order_id in polls_until_paid:
        for step in ("start", "complete"):
            payment_move(order_id, step)

    @mockserver.handler("/orders/list")
    async def poll(request: web.Request) -> dict[str, object]:
        (order_id,) = (await request.json())["orders"]
        # Paid only once eda completed it, and then after a few polls (a lagging follower).
        if (order_id, "complete") in moves:
            polls_until_paid[order_id] -= 1
        status = "PAYED" if polls_until_paid[order_id] <= 0 else "WAITING"
        return {"orders": [{"id": order_id, "status": status}]}

    result = await probe_staleness(
        mockserver.base_url, mockserver.base_url, ["o-1", "o-2"], seconds=0, poll_every=0
    )

    assert moves == [(o, s) for o in ("o-1", "o-2") for s in ("start", "complete")]
    for seen in (result.polling, result.push):
        assert len(seen.delays) == 2
        assert (seen.missed, seen.failed) == (0, 0)
        assert all(delay >= 0 for delay in seen.delays)
    assert poll.times_called == 4  # 3 for o-1, 1 for o-2
    assert stream.connections == [{"client_id": "rest-1"}]
    assert result.stream_drops == 0


async def test_a_change_never_shown_is_missed_not_waited_for(mockserver: MockServer) -> None:
    for step in ("start", "complete"):
        mockserver.json_handler(f"/v1/orders/o-1/payments/{step}", {"order_id": "o-1"})
    mockserver.json_handler("/orders/list", {"orders": [{"id": "o-1", "status": "WAITING"}]})
    Stream(mockserver)  # connected, but it never tells

    result = await probe_staleness(
        mockserver.base_url, mockserver.base_url, ["o-1"], seconds=0, poll_every=0.01, patience=0.3
    )

    for seen in (result.polling, result.push):
        assert (seen.delays, seen.missed, seen.failed) == ([], 1, 0)


async def test_a_change_eda_refused_is_counted_apart(mockserver: MockServer) -> None:
    mockserver.json_handler("/v1/orders/o-1/payments/start", {"code": "x"}, status=409)
    polls = mockserver.json_handler("/orders/list", {"orders": []})
    Stream(mockserver)

    result = await probe_staleness(mockserver.base_url, mockserver.base_url, ["o-1"], seconds=0)

    for seen in (result.polling, result.push):
        assert (seen.delays, seen.missed, seen.failed) == ([], 0, 1)
    assert polls.times_called == 0


async def test_a_dropped_stream_resumes_from_its_last_cursor(mockserver: MockServer) -> None:
    stream = Stream(mockserver, drop_first=True)

    async def complete(_request: web.Request) -> dict[str, str]:
        await stream.send_paid("o-1")
        return {"order_id": "o-1"}

    mockserver.json_handler("/v1/orders/o-1/payments/start", {"order_id": "o-1"})
    mockserver.handler("/v1/orders/o-1/payments/complete")(complete)
    mockserver.json_handler("/orders/list", {"orders": [{"id": "o-1", "status": "PAYED"}]})

    result = await probe_staleness(mockserver.base_url, mockserver.base_url, ["o-1"], seconds=0)

    assert len(result.push.delays) == 1
    assert result.stream_drops == 1
    assert stream.connections == [
        {"client_id": "rest-1"},
        {"client_id": "rest-1", "after": "5:"},
    ]


def test_the_target_rate_has_its_target_beside_it() -> None:
    assert fixed_target(1500, 12.0, 0).endswith(": met")
    assert fixed_target(1500, 25.0, 0).endswith(": MISSED")
    assert fixed_target(1500, 12.0, 3).endswith(": MISSED")
    assert fixed_target(350, 500.0, 9) == ""


def test_cpu_is_per_request_by_process_and_in_all() -> None:
    line = cpu_line({"iiko": 0.5, "eda": 0.25}, 1000)
    assert "iiko 0.500" in line
    assert "eda 0.250" in line
    assert line.endswith("all 0.750")
    assert "no requests" in cpu_line({"iiko": 1.0}, 0)


def test_a_soak_prints_each_minute_as_it_ends_then_the_first_and_last_side_by_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 22: RPS and p99 drifted over 12 minutes; each minute is printed as soon as
    wrk reports it, so a soak cut short keeps what it measured."""
    minutes = iter(
        [
            WrkResult(rps=8700.0, p50_ms=5.0, p99_ms=172.0, requests=522_000, errors=0),
            WrkResult(rps=8000.0, p50_ms=6.0, p99_ms=300.0, requests=480_000, errors=1),
            WrkResult(
                rps=6000.0, p50_ms=9.0, p99_ms=700.0, requests=360_000, errors=9, socket_errors=7
            ),
        ]
    )
    asked: list[int] = []

    def wrk(seconds: int) -> WrkResult:
        asked.append(seconds)
        print("wrk ran")  # each minute's line comes before the next minute runs
        return next(minutes)

    soaked = soak(wrk, 3, [os.getpid()])

    assert asked == [60, 60, 60]
    assert [minute.rps for minute in soaked] == [8700.0, 8000.0, 6000.0]
    lines = capsys.readouterr().out.splitlines()
    first_minute = next(i for i, line in enumerate(lines) if line.startswith("1 "))
    assert lines[first_minute + 1] == "wrk ran"
    first = next(line for line in lines if line.startswith("first"))
    last = next(line for line in lines if line.startswith("last "))
    assert first.split()[1:6] == ["8700", "5.00", "172.00", "0", "0"]
    assert last.split()[1:6] == ["6000", "9.00", "700.00", "9", "7"]
    assert "last/first: RPS 0.69, p99 4.07" in lines[-1]
