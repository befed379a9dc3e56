"""`POST /orders/refund` (issue 19): the POS's refund, checked against its restaurant here and
passed to payments-eda as it is; payments-eda's refusals reach the POS with their codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from qrpay.kernel.service import ServiceContext
from tests.support.component.iiko_integration import API_KEY
from tests.support.component.payments_eda import ORDER_ID, ledger_body
from tests.support.mockserver import MockServer, error_response
from tests.support.services import dev_config, make_context, point_services_at, running_service

HEADERS = {"X-API-Key": API_KEY}
REFUND = {"client_id": "rest-1", "order_id": ORDER_ID, "refund_id": "r-1", "amount": "100.00"}
ANSWER = {
    "order_id": ORDER_ID,
    "refund_id": "r-1",
    "status": "refunding",
    "currency": "RUB",
    "amount": "100.00",
    "tip": "0.00",
    "parts": [
        {"part_id": "r-1.1", "payment_id": "p1", "amount": "100.00", "tip": "0.00",
         "state": "refunding"},
    ],
}  # fmt: skip


@pytest.fixture
async def client(tmp_path: Any, mockserver: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    config = point_services_at(dev_config(), mockserver.base_url, "eda", "payments-eda")
    ctx: ServiceContext = make_context("iiko-integration", tmp_path, config=config)
    async with running_service(ctx) as (_app, http):
        yield http


async def test_a_refund_of_the_restaurants_order_goes_to_payments_eda(
    client: httpx.AsyncClient, mockserver: MockServer
) -> None:
    mockserver.json_handler(f"/v1/orders/{ORDER_ID}/payments", ledger_body(), method="GET")
    refunds = mockserver.json_handler("/v1/refunds", ANSWER)
    answer = await client.post("/orders/refund", json=REFUND, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == ANSWER
    sent = refunds.next_call()["json"]
    assert sent == {
        "order_id": ORDER_ID,
        "refund_id": "r-1",
        "amount": "100.00",
        "tip": "0",
        "payment_id": None,
        "source": "pos",
    }


async def test_another_restaurants_order_looks_unknown_and_is_not_refunded(
    client: httpx.AsyncClient, mockserver: MockServer
) -> None:
    mockserver.json_handler(f"/v1/orders/{ORDER_ID}/payments", ledger_body(), method="GET")
    refunds = mockserver.json_handler("/v1/refunds", ANSWER)
    # The dev key may act for rest-2 too, but the order is rest-1's.
    answer = await client.post(
        "/orders/refund", json={**REFUND, "client_id": "rest-2"}, headers=HEADERS
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "order_not_found")
    assert refunds.times_called == 0


@pytest.mark.parametrize(
    ("status", "code"),
    [(409, "refund_exceeds_paid"), (409, "refund_id_reused"), (409, "payment_not_refundable")],
)
async def test_refusals_reach_the_pos_with_their_codes(
    client: httpx.AsyncClient, mockserver: MockServer, status: int, code: str
) -> None:
    mockserver.json_handler(f"/v1/orders/{ORDER_ID}/payments", ledger_body(), method="GET")
    mockserver.handler("/v1/refunds")(lambda _request: error_response(status, code))
    answer = await client.post("/orders/refund", json=REFUND, headers=HEADERS)
    assert (answer.status_code, answer.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    "body",
    [
        {**REFUND, "amount": "-1"},
        {**REFUND, "refund_id": "has space"},
        {**REFUND, "surprise": 1},
        {k: v for k, v in REFUND.items() if k != "refund_id"},
    ],
)
async def test_a_malformed_refund_is_400_and_goes_nowhere(
    client: httpx.AsyncClient, mockserver: MockServer, body: dict[str, Any]
) -> None:
    refunds = mockserver.json_handler("/v1/refunds", ANSWER)
    answer = await client.post("/orders/refund", json=body, headers=HEADERS)
    assert answer.status_code == 400, answer.text
    assert refunds.times_called == 0


async def test_no_key_no_refund(client: httpx.AsyncClient, mockserver: MockServer) -> None:
    refunds = mockserver.json_handler("/v1/refunds", ANSWER)
    answer = await client.post("/orders/refund", json=REFUND)
    assert answer.status_code == 401, answer.text
    assert refunds.times_called == 0
