"""Requests drawn from a service's OpenAPI document, answered by a route served fast and by
the same route through FastAPI (kernel/fast_routes.py): the two answers must be the same.

schemathesis draws each request from the route's declaration, valid (positive) and
invalid (negative) ones; hypothesis runs in a thread of its own while the test's event
loop serves both apps, so the apps and their fixtures stay on the loop they were made on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from qrpay.kernel.fast_routes import fast_routes_of
from tests.support.fuzz import asgi_schema

# What schemathesis adds to every request and the service does not read.
_NOISE = frozenset({"user-agent", "accept-encoding", "accept", "connection"})


@dataclass(frozen=True)
class Drawn:
    method: str
    # The route's path as declared, and this request's (its parameters percent-encoded).
    template: str
    path: str
    query: Mapping[str, Any]
    headers: Mapping[str, str]
    content: bytes | None

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(
            self.method,
            self.path,
            params=dict(self.query),
            headers=dict(self.headers),
            content=self.content,
        )


def served_fast_paths(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves fast."""
    return [(route.method, route.path) for route in fast_routes_of(app)]


def drawn_requests(
    app: FastAPI,
    method: str,
    path: str,
    *,
    legitimate: Mapping[str, str],
    steer: Callable[[Drawn], Drawn] = lambda drawn: drawn,
    bound: Callable[[Drawn], Drawn] = lambda drawn: drawn,
) -> st.SearchStrategy[Drawn]:
    """Requests to one route drawn from ``app``'s OpenAPI document, valid and invalid; most
    carry the ``legitimate`` caller's headers (so the route's own checks are reached), the
    rest schemathesis' own (refused callers). Half are passed through ``steer`` (toward
    the test's data: a known restaurant); all through ``bound`` (no long wait)."""
    operation = asgi_schema(app)[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    def to_drawn(case: Any, as_caller: bool, steered: bool) -> Drawn:
        sent = case.as_transport_kwargs(base_url="http://testserver")
        headers = {
            key: value for key, value in sent["headers"].items() if key.lower() not in _NOISE
        }
        headers.pop("X-Schemathesis-TestCaseId", None)
        if as_caller:
            headers.update(legitimate)
        content = None
        if "json" in sent:
            content = json.dumps(sent["json"]).encode()
        elif sent.get("data") is not None:
            data = sent["data"]
            content = data if isinstance(data, bytes) else str(data).encode()
        sent_path = urlsplit(sent["url"]).path
        drawn = Drawn(method, path, sent_path, sent.get("params") or {}, headers, content)
        return bound(steer(drawn) if steered else drawn)

    return st.builds(to_drawn, cases, st.sampled_from([True, True, True, False]), st.booleans())


async def answers_alike(
    fast: httpx.AsyncClient,
    plain: httpx.AsyncClient,
    requests: st.SearchStrategy[Drawn],
    *,
    examples: int,
) -> list[int]:
    """Send each drawn request to both; fail on the first answers that differ. The statuses
    seen, for the test to check it reached more than refusals."""
    loop = asyncio.get_running_loop()
    statuses: list[int] = []

    async def both(drawn: Drawn) -> tuple[httpx.Response, httpx.Response]:
        return await drawn.send(fast), await drawn.send(plain)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        # The same draws on every run: CI sees what a run here saw.
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests)
    def alike(drawn: Drawn) -> None:
        fast_answer, plain_answer = asyncio.run_coroutine_threadsafe(both(drawn), loop).result(
            timeout=60
        )
        statuses.append(plain_answer.status_code)
        assert (fast_answer.status_code, fast_answer.headers.get("content-type")) == (
            plain_answer.status_code,
            plain_answer.headers.get("content-type"),
        ), (drawn, fast_answer.text, plain_answer.text)
        assert fast_answer.content == plain_answer.content, drawn

    await asyncio.to_thread(alike)
    return statuses
