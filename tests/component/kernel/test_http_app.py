"""The shared app factory: one error shape, body limit, request id, metrics."""

from collections.abc import AsyncIterator

import httpx
import pytest
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
