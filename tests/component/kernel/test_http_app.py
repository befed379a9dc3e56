"""The shared app factory: one error shape, body limit, request id, metrics."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import WebSocket
from pydantic import BaseModel, ConfigDict

from qrpay.kernel.errors import Conflict, DependencyUnavailable
from qrpay.kernel.http import create_app
from qrpay.kernel.metrics import ServiceMetrics


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service="demo", metrics=ServiceMetrics("demo"), max_body=lambda: 2048)

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, str]:
        return {"name": body.name}

    @app.post("/conflict")
    async def conflict() -> None:
        raise Conflict("it is taken", code="taken")

    @app.get("/down")
    async def down() -> None:
        raise DependencyUnavailable("eda is down", code="eda_unavailable")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"name": "x"}', 200, None),
        (b"not json", 400, "invalid_json"),
        (b'{"name": 5}', 400, "invalid_request"),
        (b'{"name": "x", "more": 1}', 400, "unknown_field"),
        (b"{}", 400, "missing_field"),
        (b'{"name": "' + b"x" * 4096 + b'"}', 413, "payload_too_large"),
    ],
)
async def test_bodies(
    client: httpx.AsyncClient, content: bytes, status: int, code: str | None
) -> None:
    response = await client.post(
        "/echo", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
        assert response.json()["message"]


async def test_chunked_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():
        for _ in range(10):
            yield b"x" * 512

    response = await client.post(
        "/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_errors_map_to_statuses(client: httpx.AsyncClient) -> None:
    assert (await client.post("/conflict")).json() == {"code": "taken", "message": "it is taken"}
    down = await client.get("/down")
    assert (down.status_code, down.json()["code"]) == (503, "eda_unavailable")
    bug = await client.get("/bug")
    assert (bug.status_code, bug.json()["code"]) == (500, "internal_error")
    missing = await client.get("/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_request_id_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/ping", headers={"X-Request-Id": "abc"})
    assert given.headers["x-request-id"] == "abc"
    made = await client.get("/ping")
    assert len(made.headers["x-request-id"]) == 32


async def test_metrics_count_handlers(client: httpx.AsyncClient) -> None:
    await client.post("/echo", json={"name": "x"})
    text = (await client.get("/metrics")).text
    assert 'qrpay_http_requests_total{handler="/echo",method="POST",status="200"} 1.0' in text


async def test_overload_refuses_fast_above_max_in_flight() -> None:
    limit = [2]
    app = create_app(
        service="demo",
        metrics=ServiceMetrics("demo"),
        max_body=lambda: 2048,
        max_in_flight=lambda: limit[0],
    )
    release = asyncio.Event()

    @app.get("/slow")
    async def slow_route() -> dict[str, bool]:
        await asyncio.wait_for(release.wait(), 5)
        return {"ok": True}

    async def timed(http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await http.get("/slow")
        return response, time.perf_counter() - started

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        calls = [asyncio.create_task(timed(http)) for _ in range(10)]
        for _ in range(200):
            if sum(call.done() for call in calls) == 8:
                break
            await asyncio.sleep(0.005)
        # Saturated: the ops endpoints still answer.
        assert (await http.get("/ping")).status_code == 200
        assert (await http.get("/ready")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert "qrpay_http_overload_refusals_total 8.0" in metrics
        await asyncio.sleep(0.1)
        release.set()
        results = await asyncio.gather(*calls)

        ok = [(r, took) for r, took in results if r.status_code == 200]
        refused = [(r, took) for r, took in results if r.status_code == 503]
        assert (len(ok), len(refused)) == (2, 8)
        assert all(took >= 0.1 for _, took in ok)
        for response, took in refused:
            assert took < 0.1
            assert response.json()["code"] == "overloaded"
            assert response.json()["message"]
            assert response.headers["retry-after"] == "1"
            assert len(response.headers["x-request-id"]) == 32

        # The limit is read on every request: a reload applies at once.
        release.clear()
        limit[0] = 0
        refused_now = await http.get("/slow")
        assert refused_now.status_code == 503
        limit[0] = 1
        release.set()
        assert (await http.get("/slow")).status_code == 200


async def test_the_overload_guard_refuses_websocket_handshakes_too() -> None:
    """Issue 20: a WebSocket handshake went around the in-flight limit."""
    app = create_app(
        service="demo",
        metrics=ServiceMetrics("demo"),
        max_body=lambda: 2048,
        max_in_flight=lambda: 1,
    )
    release = asyncio.Event()
    entered = asyncio.Event()

    @app.get("/slow")
    async def slow_route() -> dict[str, bool]:
        entered.set()
        await asyncio.wait_for(release.wait(), 5)
        return {"ok": True}

    streaming = asyncio.Event()
    hang_up = asyncio.Event()

    @app.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        streaming.set()
        await asyncio.wait_for(hang_up.wait(), 5)
        await websocket.close()

    async def handshake() -> list[dict[str, Any]]:
        scope = {
            "type": "websocket",
            "path": "/stream",
            "raw_path": b"/stream",
            "query_string": b"",
            "headers": [],
            "scheme": "ws",
            "server": ("t", 80),
            "client": ("127.0.0.1", 5000),
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else await asyncio.Future()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        busy = asyncio.create_task(http.get("/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        refused = await handshake()
        assert refused[0]["type"] == "websocket.http.response.start"
        assert refused[0]["status"] == 503
        assert b'"overloaded"' in refused[1]["body"]
        metrics = (await http.get("/metrics")).text
        assert "qrpay_http_overload_refusals_total 1.0" in metrics
        release.set()
        assert (await busy).status_code == 200
        # The slot free again, the handshake is answered; an open stream holds no slot.
        opened = asyncio.create_task(handshake())
        await asyncio.wait_for(streaming.wait(), 5)
        assert (await http.get("/slow")).status_code == 200
        hang_up.set()
        assert (await opened)[0]["type"] == "websocket.accept"
