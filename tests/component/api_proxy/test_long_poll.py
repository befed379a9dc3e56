"""api-proxy forwards the guest's status long-poll (``wait_ms``) on connections of its own.

payments-eda is mocked: it holds each long-poll until the test lets it answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.support.component.api_proxy import Started
from tests.support.mockserver import MockServer, json_response
from tests.support.services import dev_config, point_services_at
from tests.support.waiting import eventually

ORDER = {"order_id": "ord-1", "hmac": "ab" * 32}
WAITING = {"status": "WAITING", "message": "...", "payment_id": "p1"}
PAYED = {"status": "PAYED", "message": "paid", "payment_id": "p1"}


async def test_a_long_poll_outlives_the_usual_timeout_and_starves_no_other_call(
    start_proxy: Started, mockserver: MockServer
) -> None:
    """payments-eda answers reads within 200 ms and one call at a time: a guest waiting
    longer than that on a long-poll is still answered, and meanwhile another read goes
    through (the long-poll holds neither that slot nor a pooled connection)."""
    config = point_services_at(
        dev_config(),
        mockserver.base_url,
        "payments-eda",
        retries=0,
        timeout_ms=200,
        max_in_flight=1,
    )
    changed = asyncio.Event()
    held: list[str] = []

    async def status(request: web.Request) -> web.Response:
        if "wait_ms" in request.query:
            held.append(request.query["wait_ms"])
            await changed.wait()
            return json_response(PAYED)
        return json_response(WAITING)

    mockserver.handler("/4.0/payments/v1/orders", "GET")(status)
    async with start_proxy(config) as proxy:
        waiting = asyncio.create_task(
            proxy.get("/4.0/payments/v1/orders", params={**ORDER, "wait_ms": "25000"})
        )
        await eventually(lambda: held or waiting.done())
        assert held == ["25000"]
        plain = await proxy.get("/4.0/payments/v1/orders", params=ORDER)
        assert plain.status_code == 200, plain.text
        assert plain.json() == WAITING
        await asyncio.sleep(0.3)  # past the usual 200 ms timeout: the long-poll must stand
        assert not waiting.done()
        changed.set()
        answer = await waiting
        assert answer.status_code == 200, answer.text
        assert answer.json() == PAYED


async def test_a_wait_payments_eda_would_refuse_is_forwarded_as_a_plain_read(
    start_proxy: Started, mockserver: MockServer
) -> None:
    config = point_services_at(dev_config(), mockserver.base_url, "payments-eda", retries=0)
    route = mockserver.handler("/4.0/payments/v1/orders", "GET")(
        lambda _r: json_response({"code": "invalid_request", "message": "wait_ms"}, 400)
    )
    async with start_proxy(config) as proxy:
        answer = await proxy.get("/4.0/payments/v1/orders", params={**ORDER, "wait_ms": "-5"})
    assert answer.status_code == 400
    assert route.next_call()["query"]["wait_ms"] == "-5"
