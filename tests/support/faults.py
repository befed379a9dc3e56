"""A fault-injecting HTTP proxy for tests: put it between a client and its target.

Switch it per test between pass-through, added latency, a dropped connection
(nothing forwarded), a 5xx answer (nothing forwarded) and a lost response (the
request is forwarded and answered by the target, then the client's connection
is closed without an answer: the caller cannot tell whether it happened).
A fault can be limited to the next ``times`` requests, after which the proxy
passes through again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
import orjson
from aiohttp import web

# Hop-by-hop headers and those aiohttp recomputes; never copied across.
_SKIPPED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)


class FaultMode(StrEnum):
    PASS = "pass"
    LATENCY = "latency"
    DROP = "drop"
    ERROR = "error"
    LOST_RESPONSE = "lost_response"


@dataclass
class Fault:
    mode: FaultMode = FaultMode.PASS
    latency: float = 0.0
    status: int = 503
    # How many more requests the fault applies to; None = until switched.
    times: int | None = None


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.base_url = ""
        self.fault = Fault()
        # Requests the proxy received, and the ones it passed on to the target.
        self.received = 0
        self.forwarded = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- switching -----------------------------------------------------------------

    def pass_through(self) -> None:
        self.fault = Fault()

    def delay(self, seconds: float, *, times: int | None = None) -> None:
        self.fault = Fault(FaultMode.LATENCY, latency=seconds, times=times)

    def drop(self, *, times: int | None = None) -> None:
        self.fault = Fault(FaultMode.DROP, times=times)

    def fail(self, status: int = 503, *, times: int | None = None) -> None:
        self.fault = Fault(FaultMode.ERROR, status=status, times=times)

    def lose_response(self, *, times: int | None = None) -> None:
        self.fault = Fault(FaultMode.LOST_RESPONSE, times=times)

    def _take_fault(self) -> Fault:
        fault = self.fault
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.fault = Fault()
        return fault

    # -- serving -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        fault = self._take_fault()
        if fault.mode is FaultMode.DROP:
            return await _close_without_answer(request)
        if fault.mode is FaultMode.ERROR:
            body = {"code": "injected_fault", "message": f"fault proxy answered {fault.status}"}
            return web.Response(
                body=orjson.dumps(body), status=fault.status, content_type="application/json"
            )
        if fault.mode is FaultMode.LATENCY:
            await asyncio.sleep(fault.latency)
        status, headers, body = await self._forward(request)
        if fault.mode is FaultMode.LOST_RESPONSE:
            return await _close_without_answer(request)
        return web.Response(body=body, status=status, headers=headers)

    async def _forward(self, request: web.Request) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        raw = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIPPED_HEADERS}
        self.forwarded += 1
        async with self._session.request(
            request.method, self.target + request.path_qs, data=raw, headers=headers
        ) as response:
            body = await response.read()
            answer_headers = {
                k: v for k, v in response.headers.items() if k.lower() not in _SKIPPED_HEADERS
            }
            return response.status, answer_headers, body

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def _close_without_answer(request: web.Request) -> web.StreamResponse:
    """Close the client's socket: it sees the connection end with no answer."""
    if request.transport is not None:
        request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response(status=599)


class SelectiveFaultProxy(FaultProxy):
    """A FaultProxy whose fault applies only to requests ``applies`` picks; others pass."""

    def __init__(self, target: str, applies: Callable[[web.Request], bool] | None = None) -> None:
        super().__init__(target)
        self.applies = applies

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.applies is None or self.applies(request):
            return await super()._handle(request)
        self.received += 1
        status, headers, body = await self._forward(request)
        return web.Response(body=body, status=status, headers=headers)


def is_operation_start(request: web.Request) -> bool:
    """transactions' start_operation: POST /v1/invoices/{id}/operations (a hold or a clear)."""
    return request.method == "POST" and request.path.endswith("/operations")


@contextmanager
def threaded(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Serve ``proxy`` on an event loop of its own in a daemon thread.

    The tests' synchronous HTTP helpers (``Cluster.order_status`` and friends) then never
    stall it.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=10)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
