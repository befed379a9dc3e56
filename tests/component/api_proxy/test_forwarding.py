"""api-proxy forwards the guest's calls with the user's headers taken from the session only."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from qrpay.runner.config import QrpayConfig
from tests.support.component.api_proxy import Started, sign_in, signed_in
from tests.support.component.iiko_integration import closed_port_url
from tests.support.mockserver import MockServer, drop_connection, error_response, json_response
from tests.support.services import point_services_at

ORDER = {"order_id": "ord-1", "hmac": "ab" * 32}
PREORDER = {
    "order_id": "ord-1",
    "status": "WAITING",
    "restaurant": {"id": "rest-1", "name": "Pushkin Café"},
    "bill": {"currency": "RUB", "amount": "100", "elements": [{"name": "Tea", "amount": "100"}]},
    "payment_methods": [],
    "cashback": {"rate": "30%", "amount": "30", "currency": "RUB"},
}
PAY = {
    "service": "restaurant",
    **ORDER,
    "payment_method": {"type": "card", "id": "card-ok"},
    "amount": "100",
}


async def test_preorder_gets_the_session_user_and_not_the_clients(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/preorder", PREORDER, method="GET")
    await sign_in(proxy)
    answer = await proxy.get(
        "/4.0/payments/v1/preorder",
        params={"service": "restaurant", **ORDER},
        headers={
            "X-Yandex-UID": "someone-else",
            "X-YaTaxi-PhoneId": "their-phone",
            "Accept-Language": "en-US,en;q=0.9",
        },
    )
    assert answer.status_code == 200
    assert answer.json() == PREORDER
    call = route.next_call()
    assert call["query"] == {"service": "restaurant", **ORDER}
    assert call["headers"]["X-Yandex-UID"] == "demo-user"
    assert call["headers"]["X-YaTaxi-PhoneId"].startswith("phone-")
    assert call["headers"]["X-YaTaxi-PhoneId"] != "their-phone"
    assert call["headers"]["X-Request-Language"] == "en"
    assert call["headers"].getall("X-Yandex-UID") == ["demo-user"]


async def test_the_language_header_beats_accept_language_and_russian_is_the_default(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/preorder", PREORDER, method="GET")
    await proxy.get(
        "/4.0/payments/v1/preorder",
        params=ORDER,
        headers={"X-Request-Language": "en", "Accept-Language": "ru"},
    )
    await proxy.get("/4.0/payments/v1/preorder", params=ORDER, headers={"Accept-Language": "de"})
    assert route.next_call()["headers"]["X-Request-Language"] == "en"
    assert route.next_call()["headers"]["X-Request-Language"] == "ru"


async def test_without_a_session_reads_are_forwarded_without_a_user(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/preorder", PREORDER, method="GET")
    answer = await proxy.get(
        "/4.0/payments/v1/preorder", params=ORDER, headers={"X-Yandex-UID": "forged"}
    )
    assert answer.status_code == 200
    headers = route.next_call()["headers"]
    assert "X-Yandex-UID" not in headers
    assert "X-YaTaxi-PhoneId" not in headers


async def test_paying_without_a_session_is_401_and_never_forwarded(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/orders", {"status": "WAITING"})
    answer = await proxy.post(
        "/4.0/payments/v1/orders", json=PAY, headers={"X-Yandex-UID": "demo-user"}
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert route.times_called == 0


async def test_a_tampered_cookie_is_no_session(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/orders", {"status": "WAITING"})
    await sign_in(proxy)
    token = proxy.cookies["qrpay_session"]
    proxy.cookies.clear()
    proxy.cookies.set("qrpay_session", token[:-1] + ("0" if token[-1] != "0" else "1"))
    answer = await proxy.post("/4.0/payments/v1/orders", json=PAY)
    assert answer.status_code == 401
    assert route.times_called == 0


async def test_pay_passes_the_body_through_and_the_answer_back(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler(
        "/4.0/payments/v1/orders", {"status": "WAITING", "message": "The payment is processed"}
    )
    await sign_in(proxy)
    answer = await proxy.post("/4.0/payments/v1/orders", json=PAY)
    assert answer.status_code == 200
    assert answer.json() == {"status": "WAITING", "message": "The payment is processed"}
    call = route.next_call()
    assert call["json"] == PAY
    assert call["headers"]["X-Yandex-UID"] == "demo-user"


@pytest.mark.parametrize(
    ("status", "code"),
    [(409, "already_paid"), (409, "order_closed"), (404, "order_not_found"), (400, "bad_card")],
)
async def test_payments_eda_errors_come_back_as_they_are(
    proxy: httpx.AsyncClient, mockserver: MockServer, status: int, code: str
) -> None:
    mockserver.handler("/4.0/payments/v1/orders")(lambda _r: error_response(status, code, "as is"))
    await sign_in(proxy)
    answer = await proxy.post("/4.0/payments/v1/orders", json=PAY)
    assert answer.status_code == status
    assert answer.json() == {"code": code, "message": "as is"}


async def test_the_polling_delay_is_passed_back(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    def status(_request: web.Request) -> web.Response:
        answer = json_response({"status": "WAITING", "message": "...", "currency": "RUB"})
        answer.headers["X-Polling-Delay"] = "2.5"
        answer.headers["X-Internal-Secret"] = "not for the guest"
        return answer

    mockserver.handler("/4.0/payments/v1/orders", "GET")(status)
    answer = await proxy.get("/4.0/payments/v1/orders", params=ORDER)
    assert answer.status_code == 200
    assert answer.headers["X-Polling-Delay"] == "2.5"
    assert "X-Internal-Secret" not in answer.headers


async def test_routes_that_are_not_the_guests_are_not_forwarded(
    guest: httpx.AsyncClient, mockserver: MockServer
) -> None:
    for method, path in [("GET", "callbacks"), ("POST", "preorder"), ("GET", "../admin")]:
        answer = await guest.request(method, f"/4.0/payments/v1/{path}", json={})
        assert answer.status_code == 404, (method, path)
    assert not mockserver.requests_by_path


async def test_pay_must_be_json(guest: httpx.AsyncClient, mockserver: MockServer) -> None:
    answer = await guest.post(
        "/4.0/payments/v1/orders", content=b"order_id=x", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_content_type"
    assert not mockserver.requests_by_path


async def test_a_cross_site_pay_is_refused(
    guest: httpx.AsyncClient, mockserver: MockServer
) -> None:
    answer = await guest.post(
        "/4.0/payments/v1/orders", json=PAY, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "cross_site_request"
    assert not mockserver.requests_by_path


async def test_payments_eda_down_is_503(start_proxy: Started, proxy_config: QrpayConfig) -> None:
    config = point_services_at(proxy_config, closed_port_url(), "payments-eda")
    async with signed_in(start_proxy, config) as proxy:
        for answer in (
            await proxy.get("/4.0/payments/v1/preorder", params=ORDER),
            await proxy.post("/4.0/payments/v1/orders", json=PAY),
        ):
            assert answer.status_code == 503
            assert answer.json()["code"] == "payments_eda_unavailable"


async def test_payments_eda_failing_is_503_for_a_read_retried_and_waiting_for_a_pay(
    start_proxy: Started, proxy_config: QrpayConfig, mockserver: MockServer
) -> None:
    config = point_services_at(proxy_config, mockserver.base_url, "payments-eda", retries=1)
    failing = mockserver.handler("/4.0/payments/v1/orders", "GET")(
        lambda _r: error_response(500, "boom")
    )
    dropping = mockserver.handler("/4.0/payments/v1/orders")(drop_connection)
    async with signed_in(start_proxy, config) as proxy:
        read = await proxy.get("/4.0/payments/v1/orders", params=ORDER)
        pay = await proxy.post("/4.0/payments/v1/orders", json=PAY)
    assert read.status_code == 503
    assert failing.times_called == 2
    # The connection was lost after the pay was sent: its outcome is unknown, never a 5xx.
    assert pay.status_code == 200
    assert pay.json()["status"] == "WAITING"
    # Paying is never retried by the proxy: the page follows the payment.
    assert dropping.times_called == 1


async def test_availability_and_restaurants_carry_the_zone_and_the_user(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    available = mockserver.json_handler("/availability", {"is_available": True}, method="GET")
    listed = mockserver.json_handler(
        "/restaurants",
        {"restaurants": [{"id": "rest-1", "name": "Pushkin Café", "cashback": "30%"}]},
        method="GET",
    )
    await sign_in(proxy)
    first = await proxy.get("/4.0/go-pay/v1/availability", params={"nearest_zone": "moscow"})
    second = await proxy.get(
        "/4.0/go-pay/v1/restaurants",
        params={"nearest_zone": "moscow", "uuid": "forged"},
        headers={"X-Yandex-UID": "forged"},
    )
    assert first.status_code == 200
    assert first.json() == {"is_available": True}
    assert second.json() == {
        "restaurants": [
            {"id": "rest-1", "name": "Pushkin Café", "cashback": "30%", "address": None}
        ]
    }
    for route in (available, listed):
        query = route.next_call()["query"]
        assert query["nearest_zone"] == "moscow"
        assert query["uuid"] == "demo-user"
        assert query["phone_id"].startswith("phone-")


async def test_availability_without_a_session_has_no_user(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/availability", {"is_available": False}, method="GET")
    answer = await proxy.get("/4.0/go-pay/v1/availability", params={"nearest_zone": "moscow"})
    assert answer.json() == {"is_available": False}
    assert route.next_call()["query"] == {"nearest_zone": "moscow", "uuid": "", "phone_id": ""}


async def test_iiko_integration_down_is_503(
    start_proxy: Started, proxy_config: QrpayConfig
) -> None:
    config = point_services_at(proxy_config, closed_port_url(), "iiko-integration")
    async with start_proxy(config) as proxy:
        answer = await proxy.get("/4.0/go-pay/v1/restaurants", params={"nearest_zone": "moscow"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "iiko_integration_unavailable"
