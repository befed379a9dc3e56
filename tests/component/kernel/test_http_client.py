"""The service-to-service client: deadlines, bounded retries, error mapping."""

import asyncio
import contextvars
import time

import pytest
from aiohttp import web

from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import Conflict, DependencyUnavailable, NotFound
from qrpay.kernel.http_client import HttpSession, NotSent, ServiceClient
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.request_context import reset_request_id, set_request_id
from tests.support.mockserver import MockServer, drop_connection, error_response, slow


class DemoClient(ServiceClient):
    downstream = "demo"


@pytest.fixture
async def make_client():
    session = HttpSession()

    def make(base_url: str, **options) -> DemoClient:
        dependency = DependencyConfig(base_url=base_url, **options)
        return DemoClient(
            session=session, dependency=lambda: dependency, metrics=ServiceMetrics("test")
        )

    yield make
    await session.close()


async def test_returns_json_and_carries_request_id(mockserver: MockServer, make_client) -> None:
    route = mockserver.json_handler("/thing", {"ok": True})
    token = set_request_id("req-123")
    try:
        body = await make_client(mockserver.base_url).call(
            "POST", "/thing", endpoint="thing", idempotent=False, json={"a": 1}
        )
    finally:
        reset_request_id(token)
    assert body == {"ok": True}
    call = route.next_call()
    assert call["json"] == {"a": 1}
    assert call["headers"]["X-Request-Id"] == "req-123"


async def test_idempotent_calls_are_retried_on_5xx(mockserver: MockServer, make_client) -> None:
    answers = [error_response(500, "boom"), {"ok": 2}]
    route = mockserver.handler("/thing")(lambda _r: answers.pop(0))
    body = await make_client(mockserver.base_url, retries=2, retry_backoff_ms=1).call(
        "POST", "/thing", endpoint="thing", idempotent=True
    )
    assert body == {"ok": 2}
    assert route.times_called == 2


async def test_non_idempotent_calls_are_not_retried(mockserver: MockServer, make_client) -> None:
    route = mockserver.handler("/thing")(lambda _r: error_response(503, "busy"))
    with pytest.raises(DependencyUnavailable) as error:
        await make_client(mockserver.base_url, retries=3).call(
            "POST", "/thing", endpoint="thing", idempotent=False
        )
    assert error.value.code == "demo_unavailable"
    assert route.times_called == 1
    # What the last try met, for a caller that shows it (the guest tool).
    assert error.value.details is not None
    assert error.value.details["status"] == 503
    assert b"busy" in error.value.details["body"]


async def test_unreachable_says_why_in_details(make_client) -> None:
    from tests.support.processes import free_port

    client = make_client(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(DependencyUnavailable) as error:
        await client.call("GET", "/thing", endpoint="thing", idempotent=True)
    assert error.value.code == "demo_unavailable"
    assert error.value.details == {"reason": "connection refused"}


async def test_only_a_call_that_never_reached_the_downstream_is_not_sent(
    mockserver: MockServer, make_client
) -> None:
    """A caller of a call that is not idempotent reads ``NotSent`` as "nothing happened"
    there; a dropped connection, a timeout or a 5xx after sending leave the outcome unknown."""
    from tests.support.processes import free_port

    refused = make_client(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(NotSent):
        await refused.call("POST", "/thing", endpoint="thing", idempotent=False)
    mockserver.handler("/dropped")(drop_connection)
    mockserver.handler("/failed")(lambda _r: error_response(500, "boom"))
    mockserver.handler("/slow")(slow(2.0, lambda _r: {"late": True}))
    reached = make_client(mockserver.base_url, timeout_ms=100, retries=0)
    for path in ("/dropped", "/failed", "/slow"):
        with pytest.raises(DependencyUnavailable) as error:
            await reached.call("POST", path, endpoint="thing", idempotent=False)
        assert not isinstance(error.value, NotSent), path


async def test_a_try_may_outlast_the_dependencys_timeout_when_asked(
    mockserver: MockServer, make_client
) -> None:
    mockserver.handler("/slow")(slow(0.3, lambda _r: {"late": True}))
    client = make_client(mockserver.base_url, timeout_ms=20, retries=0)
    answer = await client.exchange(
        "POST", "/slow", endpoint="slow", idempotent=False, deadline_ms=5000, try_timeout_ms=5000
    )
    assert answer.status == 200


async def test_4xx_keeps_the_downstream_code(mockserver: MockServer, make_client) -> None:
    mockserver.handler("/a")(lambda _r: error_response(409, "order_locked", "locked"))
    mockserver.handler("/b")(lambda _r: error_response(404, "order_not_found"))
    client = make_client(mockserver.base_url)
    with pytest.raises(Conflict) as conflict:
        await client.call("POST", "/a", endpoint="a", idempotent=True)
    assert conflict.value.code == "order_locked"
    with pytest.raises(NotFound):
        await client.call("POST", "/b", endpoint="b", idempotent=True)


async def test_deadline_bounds_slow_downstream(mockserver: MockServer, make_client) -> None:
    mockserver.handler("/slow")(slow(2.0, lambda _r: {"late": True}))
    client = make_client(mockserver.base_url, timeout_ms=150, retries=3, retry_backoff_ms=10)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        await client.call("POST", "/slow", endpoint="slow", idempotent=True, deadline_ms=400)
    assert time.monotonic() - started < 0.4 + 0.25


async def test_dropped_connection_and_closed_port(mockserver: MockServer, make_client) -> None:
    mockserver.handler("/drop")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await make_client(mockserver.base_url, retries=0).call(
            "POST", "/drop", endpoint="d", idempotent=True
        )
    with pytest.raises(DependencyUnavailable):
        await make_client("http://127.0.0.1:9", retries=1, retry_backoff_ms=1).call(
            "GET", "/x", endpoint="x", idempotent=True
        )


async def test_unmocked_call_is_recorded(make_client) -> None:
    server = MockServer()
    await server.start()
    try:
        with pytest.raises(DependencyUnavailable):
            await make_client(server.base_url, retries=0).call(
                "GET", "/nobody", endpoint="n", idempotent=True
            )
    finally:
        await server.stop()
    # The fixture version of this server fails the test on exactly this list.
    assert server.unmocked == ["GET /nobody"]


async def test_bulkhead_refuses_at_once_above_max_in_flight(
    mockserver: MockServer, make_client
) -> None:
    gate = asyncio.Event()

    async def held(_request):
        await gate.wait()
        return web.json_response({"ok": True})

    route = mockserver.handler("/held")(held)
    client = make_client(mockserver.base_url, max_in_flight=2, timeout_ms=5000)

    def call():
        return client.call("POST", "/held", endpoint="held", idempotent=True)

    first, second = asyncio.create_task(call()), asyncio.create_task(call())
    while route.times_called < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as refused:
        await call()
    assert time.monotonic() - started < 0.5  # no try was made, no wait for a slot
    assert refused.value.code == "demo_unavailable"
    assert isinstance(refused.value, NotSent)
    assert route.times_called == 2
    assert client.bulkhead.in_flight == 2
    assert client.bulkhead.refused == 1
    gate.set()
    assert await asyncio.gather(first, second) == [{"ok": True}, {"ok": True}]
    # The slots are free again.
    assert client.bulkhead.in_flight == 0
    assert await call() == {"ok": True}


async def test_bulkhead_counts_callers_not_tries(mockserver: MockServer, make_client) -> None:
    answers = [error_response(503, "busy"), error_response(503, "busy"), {"ok": 3}]
    route = mockserver.handler("/flaky")(lambda _r: answers.pop(0))
    client = make_client(mockserver.base_url, max_in_flight=1, retries=2, retry_backoff_ms=1)
    # Three tries, all within the caller's one slot.
    assert await client.call("POST", "/flaky", endpoint="f", idempotent=True) == {"ok": 3}
    assert route.times_called == 3
    assert client.bulkhead.refused == 0


async def test_a_reserved_slot_covers_the_calls_made_in_it(
    mockserver: MockServer, make_client
) -> None:
    mockserver.json_handler("/thing", {"ok": True})
    client = make_client(mockserver.base_url, max_in_flight=1)
    with client.reserve("outer"):
        assert client.bulkhead.in_flight == 1
        # The holder's own calls use its slot; another caller gets none.
        assert await client.call("POST", "/thing", endpoint="t", idempotent=True) == {"ok": True}

        async def another_caller() -> None:
            # A task of its own, started outside the holder's context.
            await client.call("POST", "/thing", endpoint="t", idempotent=True)

        with pytest.raises(DependencyUnavailable):
            await asyncio.create_task(another_caller(), context=contextvars.Context())
    assert client.bulkhead.in_flight == 0


async def test_covered_calls_take_no_slot(mockserver: MockServer, make_client) -> None:
    mockserver.json_handler("/thing", {"ok": True})
    client = make_client(mockserver.base_url, max_in_flight=1)
    with client.reserve("waiter"):

        async def shared_call() -> object:
            # Made for the waiter, from a task of its own (as a coalesced read is).
            with client.bulkhead.covered():
                return await client.call("POST", "/thing", endpoint="t", idempotent=True)

        shared = asyncio.create_task(shared_call(), context=contextvars.Context())
        assert await shared == {"ok": True}
        assert client.bulkhead.in_flight == 1


async def test_bulkhead_limit_follows_the_live_config(mockserver: MockServer) -> None:
    mockserver.json_handler("/thing", {"ok": True})
    session = HttpSession()
    current = {"config": DependencyConfig(base_url=mockserver.base_url, max_in_flight=1)}
    client = DemoClient(
        session=session, dependency=lambda: current["config"], metrics=ServiceMetrics("test")
    )
    try:
        with client.reserve("a"):
            with pytest.raises(DependencyUnavailable):
                await asyncio.create_task(
                    client.call("POST", "/thing", endpoint="t", idempotent=True),
                    context=contextvars.Context(),
                )
            current["config"] = DependencyConfig(base_url=mockserver.base_url, max_in_flight=2)
            answer = await asyncio.create_task(
                client.call("POST", "/thing", endpoint="t", idempotent=True),
                context=contextvars.Context(),
            )
            assert answer == {"ok": True}
    finally:
        await session.close()


async def test_a_refusal_is_counted_as_the_bulkhead_full_outcome(
    mockserver: MockServer, make_client
) -> None:
    client = make_client(mockserver.base_url, max_in_flight=1)
    with client.reserve("a"), pytest.raises(DependencyUnavailable):
        await asyncio.create_task(
            client.call("POST", "/thing", endpoint="thing", idempotent=True),
            context=contextvars.Context(),
        )
    exposition = client._metrics.exposition().decode()
    assert 'downstream="demo",endpoint="thing",outcome="bulkhead_full"} 1.0' in exposition
