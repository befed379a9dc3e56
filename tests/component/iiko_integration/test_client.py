"""The typed client other services use: what it sends and how it reads the answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrpay.iiko_integration.client import IikoIntegrationClient
from qrpay.iiko_integration.schemas import CreateOrderRequest
from qrpay.kernel.errors import Unauthenticated
from qrpay.kernel.http_client import HttpSession
from tests.support.component.iiko_integration import API_KEY, valid_order
from tests.support.mockserver import MockServer, error_response
from tests.support.services import dev_config, make_context, point_services_at


def make_client(
    mockserver: MockServer, tmp_path: Path
) -> tuple[IikoIntegrationClient, HttpSession]:
    config = point_services_at(dev_config(), mockserver.base_url, "iiko-integration")
    ctx = make_context("api-proxy", tmp_path, config=config)
    client = IikoIntegrationClient(
        session=ctx.http, dependency=ctx.dependency("iiko-integration"), metrics=ctx.metrics
    )
    return client, ctx.http


async def test_client_round_trips(mockserver: MockServer, tmp_path: Path) -> None:
    client, session = make_client(mockserver, tmp_path)
    answer = {
        "order_id": "ord-1",
        "bill_lines": [{"type": "text", "value": "t"}, {"type": "qr-code", "value": "q"}],
    }
    create = mockserver.json_handler("/orders", answer)
    listed = mockserver.json_handler("/orders/list", {"orders": [{"id": "a", "status": "PAYED"}]})
    available = mockserver.json_handler("/availability", {"is_available": True}, method="GET")
    restaurants = mockserver.json_handler(
        "/restaurants",
        {"restaurants": [{"id": "rest-1", "name": "R", "cashback": "30%", "address": None}]},
        method="GET",
    )
    try:
        created = await client.create_order(
            API_KEY, CreateOrderRequest.model_validate(valid_order())
        )
        statuses = await client.list_orders(API_KEY, "rest-1", ["a"])
        is_on = await client.availability(nearest_zone="moscow", uuid="u", phone_id="p")
        found = await client.restaurants(nearest_zone="moscow", uuid="u", phone_id="p")
    finally:
        await session.close()

    assert created.order_id == "ord-1"
    call = create.next_call()
    assert call["json"] == valid_order()
    assert call["headers"]["X-API-Key"] == API_KEY
    assert listed.next_call()["json"] == {"client_id": "rest-1", "orders": ["a"]}
    assert [(s.id, s.status.value) for s in statuses] == [("a", "PAYED")]
    assert is_on is True
    assert available.next_call()["query"] == {
        "nearest_zone": "moscow",
        "uuid": "u",
        "phone_id": "p",
    }
    assert [r.id for r in found] == ["rest-1"]
    assert restaurants.times_called == 1


async def test_client_keeps_the_services_error_code(mockserver: MockServer, tmp_path: Path) -> None:
    client, session = make_client(mockserver, tmp_path)
    mockserver.handler("/orders/list")(lambda _r: error_response(401, "unauthorized"))
    try:
        with pytest.raises(Unauthenticated) as error:
            await client.list_orders("bad", "rest-1", ["a"])
    finally:
        await session.close()
    assert error.value.code == "unauthorized"
