"""Service tickets in tests: a test calls a service as a caller its route allows.

In-process clients (``running_service``) sign every request as the first service the
matched route allows (``kernel.callers.allow``), or as the tools when only they are;
a test that gives its own ``X-Ya-Service-Ticket`` (or an empty one) keeps it. Tests of
real processes sign with ``ticket_headers(source)``: the services run on the
development secdist, whose keys the tests hold like every tool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute, Match

from qrpay.kernel.callers import UNKNOWN_CALLER
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.kernel.tickets import TICKET_HEADER, TOOLS_IDENTITY, TTL_SECONDS, sign, tools_ticket
from tests.support.metrics import sample_value

DEV_SECDIST = REPO_DEV_CONFIG / "secdist.yaml"


def _declarations(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        if hasattr(dependency.call, "allowed_callers"):
            yield dependency.call
        yield from _declarations(dependency)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI keeps an included router as one entry holding the router it was given.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def allowed_caller(app: FastAPI, method: str, path: str) -> str | None:
    """A caller the route at ``method path`` allows; None for a route without a declaration."""
    scope = {"type": "http", "method": method, "path": path}
    for route in _api_routes(app.routes):
        if route.matches(scope)[0] == Match.FULL:
            for declared in _declarations(route.dependant):
                allowed = sorted(declared.allowed_callers)
                return allowed[0] if allowed else TOOLS_IDENTITY
            return None
    return None


class LegitimateCaller(httpx.Auth):
    def __init__(self, app: FastAPI, keys: Callable[[], Sequence[SecretStr]]) -> None:
        self.app = app
        self.keys = keys

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if TICKET_HEADER not in request.headers:
            source = allowed_caller(self.app, request.method, request.url.path)
            if source is not None:
                key = self.keys()[0].get_secret_value().encode()
                request.headers[TICKET_HEADER] = sign(source, key, int(time.time()))
        yield request


def dev_ticket_key() -> bytes:
    from qrpay.kernel.config import load_secdist

    return load_secdist(DEV_SECDIST).service_ticket_keys[0].get_secret_value().encode()


def ticket_headers(source: str = TOOLS_IDENTITY) -> dict[str, str]:
    """Headers of a call as ``source``, signed with the development key, valid for minutes."""
    return {TICKET_HEADER: sign(source, dev_ticket_key(), int(time.time()))}


def tools_session(ctx: ServiceContext) -> HttpSession:
    """A client session calling as the tools, with ``ctx``'s keys."""
    return HttpSession(ticket=tools_ticket(ctx.ticket_keys()))


# --- the checks every guarded route gets (tests/component/*/test_service_tickets.py) ------

OTHER_KEY = b"a-key-no-service-holds-0123456789abcdef"


async def refusals(client: httpx.AsyncClient, route: str, caller: str, reason: str) -> float:
    """``qrpay_service_ticket_refusals_total`` for the labels, from the service's /metrics."""
    value = sample_value(
        (await client.get("/metrics")).text,
        "qrpay_service_ticket_refusals_total",
        route=route,
        caller=caller,
        reason=reason,
    )
    return 0.0 if value is None else value


@dataclass(frozen=True)
class GuardedCall:
    """One call of a guarded route, as the tests of every service make it."""

    client: httpx.AsyncClient
    method: str
    path: str
    route: str  # the route's template, the counter's label
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None

    async def send(self, ticket: str) -> httpx.Response:
        headers = {**(self.headers or {}), TICKET_HEADER: ticket}
        return await self.client.request(
            self.method, self.path, json=self.json, params=self.params, headers=headers
        )

    def signed(self, source: str, *, key: bytes | None = None, age: int = 0) -> str:
        return sign(source, key or dev_ticket_key(), int(time.time()) - age)

    async def assert_refused(self, allowed: str, wrong: str) -> None:
        """No, expired, forged and unknown-key tickets: 401; ``wrong``: 403; all counted."""
        before = {
            reason: await refusals(self.client, self.route, UNKNOWN_CALLER, reason)
            for reason in ("missing", "expired", "bad_signature", "unknown_key", "malformed")
        }
        before_wrong = await refusals(self.client, self.route, wrong, "not_allowed")
        genuine = self.signed(allowed)
        forged = genuine.replace(allowed, wrong, 1) if allowed != wrong else genuine + "0"
        cases = {
            "missing": "",
            "expired": self.signed(allowed, age=TTL_SECONDS),
            "bad_signature": forged,
            "unknown_key": self.signed(allowed, key=OTHER_KEY),
            "malformed": genuine[:-1],
        }
        for reason, ticket in cases.items():
            answer = await self.send(ticket)
            assert answer.status_code == 401, (reason, answer.text)
            assert answer.json()["code"] == "service_ticket_invalid", reason
            assert ticket not in answer.text or not ticket
        answer = await self.send(self.signed(wrong))
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "service_not_allowed"
        for reason, count in before.items():
            after = await refusals(self.client, self.route, UNKNOWN_CALLER, reason)
            assert after == count + 1, reason
        assert await refusals(self.client, self.route, wrong, "not_allowed") == before_wrong + 1

    async def as_caller(self, source: str) -> httpx.Response:
        return await self.send(self.signed(source))


def as_api_proxy(user_id: str) -> dict[str, str]:
    """A guest's call to payments-eda as api-proxy makes it: the user header and its ticket."""
    return {"X-Yandex-UID": user_id, **ticket_headers("api-proxy")}
