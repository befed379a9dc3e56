from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from qrpay.kernel import deeplink
from qrpay.kernel.service import ServiceContext
from tests.support.component.iiko_integration import (
    HEADERS,
    Started,
    closed_port_url,
    eda_order,
    list_orders,
    valid_order,
)
from tests.support.mockserver import MockServer, error_response, slow
from tests.support.services import dev_config, dev_secdist, running_service

HMAC_KEY = dev_secdist().hmac_keys[0]


def created_counter(ctx: ServiceContext, client_id: str = "rest-1") -> float:
    value = ctx.metrics.registry.get_sample_value(
        "qrpay_orders_created_with_qr_total", {"client_id": client_id}
    )
    return value or 0.0


def mock_create(mockserver: MockServer, outcome: str = "created", order_id: str = "ord-1") -> Any:
    @mockserver.handler("/v1/orders")
    async def create(request: web.Request) -> dict[str, Any]:
        body = await request.json()
        return {"order": eda_order(body, order_id=order_id), "outcome": outcome}

    return create


async def test_create_order_happy_path(iiko: Started, mockserver: MockServer) -> None:
    ctx, client = iiko
    create = mock_create(mockserver)

    response = await client.post("/orders", json=valid_order(), headers=HEADERS)

    assert response.status_code == 200, response.text
    assert create.times_called == 1
    assert create.next_call()["json"] == valid_order()
    body = response.json()
    assert body["order_id"] == "ord-1"
    text, qr = body["bill_lines"]
    assert text == {"type": "text", "value": "Оплати через yandex-go и получи кэшбэк 30%!"}
    assert qr["type"] == "qr-code"
    link = urlsplit(qr["value"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == dev_config().deeplink.base
    query = parse_qs(link.query)
    assert query["order_id"] == ["ord-1"]
    assert deeplink.verify([HMAC_KEY], "ord-1", "rest-1", query["hmac"][0])
    assert not deeplink.verify([HMAC_KEY], "ord-1", "rest-2", query["hmac"][0])
    assert created_counter(ctx) == 1


async def test_repeat_returns_same_order_and_counts_once(
    iiko: Started, mockserver: MockServer
) -> None:
    ctx, client = iiko
    mock_create(mockserver, outcome="created")
    first = await client.post("/orders", json=valid_order(), headers=HEADERS)
    mock_create(mockserver, outcome="existing")
    second = await client.post("/orders", json=valid_order(), headers=HEADERS)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert created_counter(ctx) == 1


async def test_order_locked_is_a_409_with_edas_code(iiko: Started, mockserver: MockServer) -> None:
    _, client = iiko
    mockserver.handler("/v1/orders")(
        lambda _request: error_response(409, "order_locked", "a payment is under way")
    )
    response = await client.post("/orders", json=valid_order(), headers=HEADERS)
    assert response.status_code == 409
    assert response.json()["code"] == "order_locked"


async def assert_unavailable_within(
    ctx: ServiceContext, deadline_ms: int, slack_s: float = 0.3
) -> None:
    async with running_service(ctx) as (_app, client):
        started = time.monotonic()
        response = await client.post("/orders", json=valid_order(), headers=HEADERS)
        elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert set(response.json()) == {"code", "message"}
    assert elapsed < deadline_ms / 1000 + slack_s


def short_deadline(ms: int) -> Any:
    data = dev_config().model_dump(mode="json")
    data["orders"]["create_deadline_ms"] = ms
    return type(dev_config()).model_validate(data)


async def test_eda_down_is_503(iiko_context: Callable[..., ServiceContext]) -> None:
    ctx = iiko_context(short_deadline(500), base_url=closed_port_url())
    await assert_unavailable_within(ctx, 500)


async def test_eda_too_slow_is_503_within_deadline(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    # eda's own timeout is longer than the deadline: the deadline must still win.
    ctx = iiko_context(short_deadline(300), timeout_ms=5000, retries=2)
    create = mockserver.handler("/v1/orders")(slow(1.0, lambda _request: {}))
    await assert_unavailable_within(ctx, 300)
    assert create.times_called >= 1


async def test_eda_500_is_503_within_deadline(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    ctx = iiko_context(short_deadline(500))
    create = mockserver.handler("/v1/orders")(
        lambda _request: error_response(500, "boom", "eda exploded")
    )
    await assert_unavailable_within(ctx, 500)
    assert create.times_called >= 1


async def test_unknown_key_is_401(iiko: Started, mockserver: MockServer) -> None:
    _, client = iiko
    create = mock_create(mockserver)
    for headers in ({"X-API-Key": "not-a-key-0123456789abcdef"}, {}):
        response = await client.post("/orders", json=valid_order(), headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        listed = await list_orders(client, ["a"], headers=headers)
        assert listed.status_code == 401
    assert create.times_called == 0


async def test_other_restaurant_is_403_before_restaurant_checks(
    iiko_context: Callable[..., ServiceContext], mockserver: MockServer
) -> None:
    create = mock_create(mockserver)
    ctx = iiko_context()
    async with running_service(ctx) as (_app, client):
        # rest-3 exists but is disabled; the key is not for it, so it must not learn that.
        for client_id in ("rest-3", "no-such-restaurant"):
            response = await client.post(
                "/orders", json=valid_order(client_id=client_id), headers=HEADERS
            )
            assert response.status_code == 403
            assert response.json()["code"] == "forbidden_client"
        listed = await list_orders(client, ["a"], client_id="rest-3")
        assert listed.status_code == 403
    assert create.times_called == 0
