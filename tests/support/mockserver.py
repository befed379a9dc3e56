"""A mock server in the style of yandex-taxi-testsuite.

Each test registers the downstream handlers it expects. A call nobody
registered is answered 599 and recorded, and the fixture fails the test at
teardown. Handlers can sleep (timeouts) or drop the connection (network errors).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse] | web.StreamResponse | Any]


@dataclass
class MockedRoute:
    method: str
    path: str
    handler: Handler
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def times_called(self) -> int:
        return len(self.calls)

    def next_call(self) -> dict[str, Any]:
        return self.calls.pop(0)


class MockServer:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], MockedRoute] = {}
        self.unmocked: list[str] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self.requests_by_path: dict[str, int] = defaultdict(int)
        # Answers a path nobody registered, where a test means it (e.g. "no such order"
        # for any id a fuzzer makes up); without it such a call fails the test.
        self.fallback: Handler | None = None

    def handler(self, path: str, method: str = "POST") -> Callable[[Handler], MockedRoute]:
        """Register ``path``; the handler returns a Response, a JSON-able value, or raises.

        A ``{name}`` in ``path`` stands for any one segment (an id a test cannot know, such
        as a payment's uuid); a path registered exactly wins over a pattern.
        """

        def register(func: Handler) -> MockedRoute:
            route = MockedRoute(method.upper(), path, func)
            self._routes[(method.upper(), path)] = route
            return route

        return register

    def json_handler(
        self, path: str, body: Any, status: int = 200, method: str = "POST"
    ) -> MockedRoute:
        def answer(_request: web.Request) -> web.Response:
            return json_response(body, status)

        return self.handler(path, method)(answer)

    def error_handler(
        self, path: str, status: int, code: str, message: str, method: str = "POST"
    ) -> MockedRoute:
        """``path`` answers the error ``code`` (a service's error body) with ``status``."""
        return self.json_handler(path, {"code": code, "message": message}, status, method)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests_by_path[request.path] += 1
        route = self._routes.get((request.method, request.path)) or self._matching(request)
        if route is None and self.fallback is not None:
            route = MockedRoute(request.method, request.path, self.fallback)
        if route is None:
            self.unmocked.append(f"{request.method} {request.path}")
            return web.json_response({"code": "unmocked", "message": request.path}, status=599)
        raw = await request.read()
        route.calls.append(
            {
                "json": orjson.loads(raw) if raw else None,
                "query": dict(request.query),
                "headers": request.headers.copy(),
            }
        )
        result = route.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result)

    def _matching(self, request: web.Request) -> MockedRoute | None:
        for (method, path), route in self._routes.items():
            if method == request.method and "{" in path and _pattern(path).fullmatch(request.path):
                return route
        return None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        port = sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(path)))


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str = "mocked error") -> web.Response:
    return json_response({"code": code, "message": message}, status)


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without answering: the caller sees a network error."""
    transport = request.transport
    if transport is not None:
        transport.close()
    await asyncio.sleep(0.05)
    return web.Response(status=599)


def slow(seconds: float, then: Handler) -> Handler:
    async def handler(request: web.Request) -> Any:
        await asyncio.sleep(seconds)
        result = then(request)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return handler
