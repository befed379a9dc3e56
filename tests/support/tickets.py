"""Service tickets in tests: a test calls a service as a caller its route allows.

In-process clients (``running_service``) sign every request as the first service the
matched route allows (``kernel.callers.allow``), or as the tools when only they are,
for the service under test, with that caller's key from the context's secdist; a test
that gives its own ``X-Ya-Service-Ticket`` (or an empty one) keeps it. Tests of real
processes sign with ``ticket_headers(source, to=destination)``: the services run on the
development secdist, whose keys (every service's) the tests hold like every tool.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import Match

from qrpay.kernel.callers import UNKNOWN_CALLER, api_routes, declarations
from qrpay.kernel.config import TicketKeys
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.kernel.tickets import (
    MAX_SKEW_SECONDS,
    MAX_TTL_SECONDS,
    TICKET_HEADER,
    TOOLS_IDENTITY,
    TTL_SECONDS,
    Ticket,
    TicketVerifier,
    new_private_key,
    sign,
    tools_signer,
)
from qrpay.runner.config import load_secdist
from qrpay.runner.registry import SERVICE_NAMES
from tests.support.metrics import sample_value

DEV_SECDIST = REPO_DEV_CONFIG / "secdist.yaml"


def allowed_caller(app: FastAPI, method: str, path: str) -> str | None:
    """A caller the route at ``method path`` allows; None for a route without a declaration."""
    scope = {"type": "http", "method": method, "path": path}
    for route in api_routes(app.routes):
        if route.matches(scope)[0] == Match.FULL:
            for declared in declarations(route.dependant):
                allowed = sorted(declared.allowed_callers)
                return allowed[0] if allowed else TOOLS_IDENTITY
            return None
    return None


class LegitimateCaller(httpx.Auth):
    """Signs each request for ``ctx``'s service as a caller its route allows."""

    def __init__(self, app: FastAPI, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if TICKET_HEADER not in request.headers:
            source = allowed_caller(self.app, request.method, request.url.path)
            keys = self.ctx.runtime.secdist.ticket_keys.signing(source or "")
            if source is not None and keys:
                key = keys[0].get_secret_value()
                request.headers[TICKET_HEADER] = sign(source, self.ctx.name, key, int(time.time()))
        yield request


@cache
def dev_ticket_keys() -> TicketKeys:
    return load_secdist(DEV_SECDIST).ticket_keys


def dev_private_key(identity: str) -> str:
    """``identity``'s development private ticket key."""
    return dev_ticket_keys().signing(identity)[0].get_secret_value()


def signed(source: str, to: str, *, key: str | None = None, age: int = 0) -> str:
    """A ticket from ``source`` to ``to`` issued ``age`` seconds ago, signed with ``key``
    (default: ``source``'s development key)."""
    return sign(source, to, key or dev_private_key(source), int(time.time()) - age)


def claims(ticket: str, destination: str) -> Ticket:
    """What ``ticket`` says, checked at ``destination`` with the development public keys."""
    return TicketVerifier(destination, lambda: dev_ticket_keys().public, time.time).verify(ticket)


def ticket_headers(source: str = TOOLS_IDENTITY, *, to: str) -> dict[str, str]:
    """Headers of a call from ``source`` to ``to``, with the development keys, valid for
    minutes."""
    return {TICKET_HEADER: signed(source, to)}


def tools_session(ctx: ServiceContext) -> HttpSession:
    """A client session calling as the tools, with ``ctx``'s secdist's tools key."""
    keys = ctx.runtime.secdist.ticket_keys.signing(TOOLS_IDENTITY)
    return HttpSession(ticket=tools_signer(keys).ticket)


# --- the checks every guarded route gets (tests/component/*/test_service_tickets.py) ------

# A well-formed private key no service's secdist has the public half of.
OTHER_KEY = new_private_key()


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

    destination: str  # the service called
    client: httpx.AsyncClient
    method: str
    path: str
    route: str = ""  # the route's template, the counter's label (default: the path)
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.route:
            object.__setattr__(self, "route", self.path)

    async def send(self, ticket: str) -> httpx.Response:
        headers = {**(self.headers or {}), TICKET_HEADER: ticket}
        return await self.client.request(
            self.method, self.path, json=self.json, params=self.params, headers=headers
        )

    def signed(self, source: str, *, key: str | None = None, age: int = 0) -> str:
        return signed(source, self.destination, key=key, age=age)

    async def assert_refused(self, allowed: str, wrong: str) -> None:
        """No, expired, not yet valid, forged, unknown-key, other-destination tickets, and
        ``wrong``'s key claiming to be ``allowed``: 401; ``wrong``: 403; all counted."""
        genuine = self.signed(allowed)
        fields = genuine.split(".")
        fields[3] = str(int(fields[3]) + MAX_TTL_SECONDS)  # a holder lengthening its life
        elsewhere = next(name for name in SERVICE_NAMES if name != self.destination)
        cases = [
            ("missing", ""),
            ("expired", self.signed(allowed, age=TTL_SECONDS)),
            ("not_yet_valid", self.signed(allowed, age=-2 * MAX_SKEW_SECONDS)),
            ("bad_signature", ".".join(fields)),
            ("unknown_key", self.signed(allowed, key=OTHER_KEY)),
            # ``wrong``'s own key, the ticket claiming to be from ``allowed``.
            ("unknown_key", self.signed(allowed, key=dev_private_key(wrong))),
            ("malformed", genuine[:-1]),
            ("wrong_destination", signed(allowed, elsewhere)),
        ]
        expected = Counter(reason for reason, _ in cases)
        before = {
            reason: await refusals(self.client, self.route, UNKNOWN_CALLER, reason)
            for reason in expected
        }
        before_wrong = await refusals(self.client, self.route, wrong, "not_allowed")
        for reason, ticket in cases:
            answer = await self.send(ticket)
            assert answer.status_code == 401, (reason, answer.text)
            assert answer.json()["code"] == "service_ticket_invalid", reason
            assert ticket not in answer.text or not ticket
        answer = await self.send(self.signed(wrong))
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "service_not_allowed"
        for reason, count in before.items():
            after = await refusals(self.client, self.route, UNKNOWN_CALLER, reason)
            assert after == count + expected[reason], reason
        assert await refusals(self.client, self.route, wrong, "not_allowed") == before_wrong + 1

    async def as_caller(self, source: str) -> httpx.Response:
        return await self.send(self.signed(source))


def as_api_proxy(user_id: str) -> dict[str, str]:
    """A guest's call to payments-eda as api-proxy makes it: the user header and its ticket."""
    return {"X-Yandex-UID": user_id, **ticket_headers("api-proxy", to="payments-eda")}
