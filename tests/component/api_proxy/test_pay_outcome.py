"""A pay through api-proxy (issue 18): the guest's idempotency token is forwarded, api-proxy
waits payments-eda's whole pay budget, and a pay whose outcome is lost on the way is answered
200 WAITING on the payment the token names, never 5xx. A pay that never reached payments-eda
(its bulkhead full, the connection refused) is 503: nothing happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER, payment_id_for
from qrpay.runner.config import QrpayConfig, parse_config
from tests.support.component.api_proxy import Started, sign_in, signed_in
from tests.support.component.iiko_integration import closed_port_url
from tests.support.mockserver import MockServer, drop_connection, error_response, slow
from tests.support.services import point_services_at

ORDER_ID = "ord-1"
TOKEN = "tap-0123456789abcdef_-"
PAY = {
    "service": "restaurant",
    "order_id": ORDER_ID,
    "hmac": "ab" * 32,
    "payment_method": {"type": "card", "id": "card-ok"},
    "amount": "100",
}
SHARE = {**PAY, "share": {"way": "equal", "parts": 3}}
ORDERS = "/4.0/payments/v1/orders"
SHARES = "/4.0/payments/v1/orders/share"
WAITING_EN = "The payment is being processed"


def with_budget(config: QrpayConfig, pay_budget_ms: int, **payments_eda: Any) -> QrpayConfig:
    """``config`` with payments-eda's pay budget and its dependency settings at api-proxy."""
    data = config.model_dump(mode="json")
    data["payments"]["pay_budget_ms"] = pay_budget_ms
    data["services"]["payments-eda"].update(payments_eda)
    return parse_config(data)


async def post_share(
    proxy: httpx.AsyncClient, token: str = TOKEN, **headers: str
) -> httpx.Response:
    return await proxy.post(
        SHARES, json=SHARE, headers={IDEMPOTENCY_TOKEN_HEADER: token, **headers}
    )


class Held:
    """A payments-eda that takes the pay and never answers until the test lets it go."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, _request: web.Request) -> web.Response:
        self.arrived.set()
        await self.release.wait()
        return error_response(409, "too_late", "api-proxy gave up on this answer long ago")


@pytest.fixture
async def held() -> AsyncIterator[Held]:
    handler = Held()
    yield handler
    handler.release.set()


async def test_the_guests_token_is_forwarded_on_both_pays(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    whole = mockserver.json_handler(ORDERS, {"status": "WAITING", "message": "..."})
    share = mockserver.json_handler(
        SHARES, {"status": "WAITING", "message": "...", "share_id": "s-1"}
    )
    await sign_in(proxy)
    for path, body in ((ORDERS, PAY), (SHARES, SHARE)):
        answer = await proxy.post(path, json=body, headers={IDEMPOTENCY_TOKEN_HEADER: TOKEN})
        assert answer.status_code == 200, answer.text
    for route in (whole, share):
        assert route.next_call()["headers"].getall(IDEMPOTENCY_TOKEN_HEADER) == [TOKEN]


async def test_a_whole_bill_pay_without_a_token_is_forwarded_without_one(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler(ORDERS, {"status": "WAITING", "message": "..."})
    await sign_in(proxy)
    answer = await proxy.post(ORDERS, json=PAY)
    assert answer.status_code == 200
    assert IDEMPOTENCY_TOKEN_HEADER not in route.next_call()["headers"]


async def test_a_share_without_a_token_is_400_and_never_forwarded(
    guest: httpx.AsyncClient, mockserver: MockServer
) -> None:
    answer = await guest.post(SHARES, json=SHARE)
    assert answer.status_code == 400
    assert answer.json()["code"] == "idempotency_token_required"
    assert not mockserver.requests_by_path


@pytest.mark.parametrize(
    "token",
    ["short", "x" * 129, "has space-in-it", "slash/not-allowed", "dots.are.not.allowed", ""],
)
async def test_a_malformed_token_is_400_and_never_forwarded(
    guest: httpx.AsyncClient, mockserver: MockServer, token: str
) -> None:
    for path, body in ((ORDERS, PAY), (SHARES, SHARE)):
        answer = await guest.post(path, json=body, headers={IDEMPOTENCY_TOKEN_HEADER: token})
        assert answer.status_code == 400, (path, token)
        assert answer.json()["code"] == "invalid_idempotency_token"
    assert not mockserver.requests_by_path


async def test_a_pay_naming_no_order_is_400_and_never_forwarded(
    guest: httpx.AsyncClient, mockserver: MockServer
) -> None:
    for body in ({"service": "restaurant"}, [PAY], {**SHARE, "order_id": 7}):
        answer = await guest.post(SHARES, json=body, headers={IDEMPOTENCY_TOKEN_HEADER: TOKEN})
        assert answer.status_code == 400
        assert answer.json()["code"] == "invalid_request"
    assert not mockserver.requests_by_path


async def test_a_share_payments_eda_does_not_answer_in_its_budget_is_waiting_on_that_share(
    start_proxy: Started, proxy_config: QrpayConfig, mockserver: MockServer, held: Held
) -> None:
    route = mockserver.handler(SHARES)(held)
    async with signed_in(start_proxy, with_budget(proxy_config, 100, timeout_ms=20)) as proxy:
        answer = await post_share(proxy, **{"X-Request-Language": "en"})
    assert held.arrived.is_set()
    assert answer.status_code == 200, answer.text
    share_id = payment_id_for(ORDER_ID, TOKEN)
    assert answer.json() == {
        "status": "WAITING",
        "message": WAITING_EN,
        "payment_id": share_id,
        "refunded": None,
        "share_id": share_id,
    }
    assert answer.headers["X-Polling-Delay"] == "1"
    assert route.times_called == 1  # a pay is never sent twice by api-proxy


async def test_a_whole_bill_pay_lost_on_the_way_is_waiting_on_the_tokens_payment(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.handler(ORDERS)(drop_connection)
    await sign_in(proxy)
    answer = await proxy.post(ORDERS, json=PAY, headers={IDEMPOTENCY_TOKEN_HEADER: TOKEN})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "WAITING",
        "message": "Платёж обрабатывается",
        "payment_id": payment_id_for(ORDER_ID, TOKEN),
        "refunded": None,
    }
    assert route.times_called == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_without_a_definite_outcome_is_waiting_never_5xx(
    proxy: httpx.AsyncClient, mockserver: MockServer, status: int
) -> None:
    mockserver.handler(SHARES)(lambda _r: error_response(status, "eda_unavailable"))
    mockserver.handler(ORDERS)(lambda _r: error_response(status, "transactions_unavailable"))
    await sign_in(proxy)
    share = await post_share(proxy)
    whole = await proxy.post(ORDERS, json=PAY)
    assert share.status_code == 200
    assert share.json()["share_id"] == payment_id_for(ORDER_ID, TOKEN)
    assert whole.status_code == 200
    # No token: the page follows the order's payment, as before tokens.
    assert whole.json()["status"] == "WAITING"
    assert whole.json()["payment_id"] is None


async def test_payments_eda_shedding_the_pay_at_its_door_is_503(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    mockserver.handler(SHARES)(lambda _r: error_response(503, "overloaded"))
    await sign_in(proxy)
    answer = await post_share(proxy)
    assert answer.status_code == 503
    assert answer.json()["code"] == "payments_eda_unavailable"


async def test_a_pay_that_cannot_connect_is_503(
    start_proxy: Started, proxy_config: QrpayConfig
) -> None:
    config = point_services_at(proxy_config, closed_port_url(), "payments-eda")
    async with signed_in(start_proxy, config) as proxy:
        answer = await post_share(proxy)
    assert answer.status_code == 503
    assert answer.json()["code"] == "payments_eda_unavailable"


async def test_a_pay_refused_by_a_full_bulkhead_is_503_and_never_sent(
    start_proxy: Started, proxy_config: QrpayConfig, mockserver: MockServer, held: Held
) -> None:
    route = mockserver.handler(SHARES)(held)
    async with signed_in(start_proxy, with_budget(proxy_config, 60_000, max_in_flight=1)) as proxy:
        first = asyncio.create_task(post_share(proxy))
        await held.arrived.wait()
        second = await post_share(proxy, TOKEN + "2")
        held.release.set()
        await first
    assert second.status_code == 503
    assert second.json()["code"] == "payments_eda_unavailable"
    assert route.times_called == 1


async def test_a_pay_is_waited_for_past_the_dependencys_timeout_within_the_budget(
    start_proxy: Started, proxy_config: QrpayConfig, mockserver: MockServer
) -> None:
    """payments-eda's own budget bounds a pay, not services.payments-eda.timeout_ms: an
    answer after that timeout but within the budget is the guest's answer."""
    paid = {"status": "PAYED", "message": "paid", "share_id": "s-1"}
    mockserver.handler(SHARES)(slow(0.3, lambda _r: paid))
    async with signed_in(start_proxy, with_budget(proxy_config, 5000, timeout_ms=20)) as proxy:
        answer = await post_share(proxy)
    assert answer.status_code == 200
    assert answer.json() == paid
