"""pos-sim --push against a scripted stream server: it prints each change as it arrives and
resumes from the last cursor after the server drops the connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from rich.console import Console

from qrpay_tools.pos_sim.client import PosClient
from qrpay_tools.pos_sim.push import follow_by_push
from tests.support.processes import free_port


class StreamServer:
    """The first connection sends a ping and a change then drops; the next one must resume
    from that change's cursor and gets the final status."""

    def __init__(self) -> None:
        self.connections: list[dict[str, str]] = []
        self.pongs = 0

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        self.connections.append({**request.query, "key": request.headers.get("X-API-Key", "")})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if len(self.connections) == 1:
            await ws.send_json({"type": "ping", "cursor": "5:"})
            reply = await ws.receive_json()
            if reply == {"type": "pong"}:
                self.pongs += 1
            await ws.send_json(
                {
                    "type": "change",
                    "id": "o1",
                    "client_id": "rest-1",
                    "status": "WAITING",
                    "cursor": "6:o1",
                }
            )
            await ws.send_json(
                {
                    "type": "change",
                    "id": "other",
                    "client_id": "rest-1",
                    "status": "PAYED",
                    "cursor": "7:other",
                }
            )
            await ws.close()
        else:
            await ws.send_json(
                {
                    "type": "change",
                    "id": "o1",
                    "client_id": "rest-1",
                    "status": "PAYED",
                    "cursor": "8:o1",
                }
            )
            await ws.receive()
        return ws

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"orders": [{"id": "o1", "status": "WAITING"}]})


@pytest.fixture
async def server() -> AsyncIterator[tuple[StreamServer, str]]:
    stream = StreamServer()
    app = web.Application()
    app.router.add_get("/orders/stream", stream.stream)
    app.router.add_post("/orders/list", stream.status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield stream, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_push_prints_changes_and_resumes_from_the_last_cursor(
    server: tuple[StreamServer, str],
) -> None:
    stream, url = server
    console = Console(record=True, width=200)
    async with PosClient(url, "the-key") as client:
        status = await follow_by_push(client, "rest-1", "o1", 60, console)
    assert status == "PAYED"
    assert [c.get("after") for c in stream.connections] == [None, "7:other"]
    assert {c["client_id"] for c in stream.connections} == {"rest-1"}
    assert {c["key"] for c in stream.connections} == {"the-key"}
    assert stream.pongs == 1
    lines = console.export_text().splitlines()
    assert lines[0] == "order o1: WAITING"
    assert lines[-1] == "order o1: PAYED"
    assert any(line.startswith("stream closed") for line in lines)
