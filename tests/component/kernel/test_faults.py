"""The service client against faults injected between it and its downstream.

A lost response (the downstream did the work, the answer never came back) is
why writes carry idempotency keys: a retried idempotent call reaches the
downstream twice, and a non-idempotent one leaves the caller not knowing.
"""

import time
from collections.abc import AsyncIterator, Callable

import pytest

from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import DependencyUnavailable
from qrpay.kernel.http_client import HttpSession, ServiceClient
from qrpay.kernel.metrics import ServiceMetrics
from tests.support.faults import FaultProxy
from tests.support.mockserver import MockServer


class DemoClient(ServiceClient):
    downstream = "demo"


@pytest.fixture
async def proxy(mockserver: MockServer) -> AsyncIterator[FaultProxy]:
    server = FaultProxy(mockserver.base_url)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_client(proxy: FaultProxy) -> AsyncIterator[Callable[..., DemoClient]]:
    session = HttpSession()

    def make(**options: int) -> DemoClient:
        dependency = DependencyConfig(
            base_url=proxy.base_url, **{"timeout_ms": 1000, "retry_backoff_ms": 0, **options}
        )
        return DemoClient(
            session=session, dependency=lambda: dependency, metrics=ServiceMetrics("faults")
        )

    yield make
    await session.close()


async def test_pass_through(mockserver: MockServer, proxy: FaultProxy, make_client) -> None:
    route = mockserver.json_handler("/thing", {"ok": True})
    body = await make_client().call("POST", "/thing", endpoint="t", idempotent=False, json={"a": 1})
    assert body == {"ok": True}
    assert route.next_call()["json"] == {"a": 1}


async def test_latency_beyond_timeout_is_unavailable(
    mockserver: MockServer, proxy: FaultProxy, make_client
) -> None:
    mockserver.json_handler("/thing", {"ok": True}, method="GET")
    proxy.delay(1.0)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as caught:
        await make_client(timeout_ms=100, retries=1).call(
            "GET", "/thing", endpoint="t", idempotent=True
        )
    assert caught.value.code == "demo_unavailable"
    assert time.monotonic() - started < 0.5
    assert proxy.forwarded == 0


@pytest.mark.parametrize(
    "fault",
    [lambda proxy: proxy.fail(503, times=1), lambda proxy: proxy.drop(times=1)],
    ids=["5xx", "dropped connection"],
)
async def test_a_failed_try_is_retried_when_idempotent(
    mockserver: MockServer, proxy: FaultProxy, make_client, fault
) -> None:
    route = mockserver.json_handler("/thing", {"ok": True}, method="GET")
    fault(proxy)
    body = await make_client(retries=1).call("GET", "/thing", endpoint="t", idempotent=True)
    assert body == {"ok": True}
    assert (proxy.received, route.times_called) == (2, 1)


async def test_5xx_is_not_retried_when_not_idempotent(
    mockserver: MockServer, proxy: FaultProxy, make_client
) -> None:
    route = mockserver.json_handler("/thing", {"ok": True})
    proxy.fail(502, times=1)
    with pytest.raises(DependencyUnavailable):
        await make_client(retries=1).call("POST", "/thing", endpoint="t", idempotent=False)
    assert (proxy.received, route.times_called) == (1, 0)


async def test_lost_response_retried_reaches_the_target_twice(
    mockserver: MockServer, proxy: FaultProxy, make_client
) -> None:
    route = mockserver.json_handler("/charge", {"ok": True})
    proxy.lose_response()
    with pytest.raises(DependencyUnavailable):
        await make_client(retries=1).call(
            "POST", "/charge", endpoint="t", idempotent=True, json={"key": "k-1"}
        )
    # The downstream did the work on every try though the caller saw only failures:
    # without an idempotency key the second try would have charged twice.
    assert route.times_called == 2
    assert [route.next_call()["json"] for _ in range(2)] == [{"key": "k-1"}] * 2


async def test_lost_response_not_idempotent_reaches_the_target_once(
    mockserver: MockServer, proxy: FaultProxy, make_client
) -> None:
    route = mockserver.json_handler("/charge", {"ok": True})
    proxy.lose_response(times=1)
    with pytest.raises(DependencyUnavailable):
        await make_client(retries=1).call("POST", "/charge", endpoint="t", idempotent=False)
    # The caller got an error, yet the work was done: it must not assume it was not.
    assert route.times_called == 1
