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
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute, Match

from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.kernel.tickets import TICKET_HEADER, TOOLS_IDENTITY, TicketSigner, sign

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
    def __init__(
        self, app: FastAPI, keys: Callable[[], Sequence[SecretStr]], now: Callable[[], float]
    ) -> None:
        self.app = app
        self.keys = keys
        self.now = now

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if TICKET_HEADER not in request.headers:
            source = allowed_caller(self.app, request.method, request.url.path)
            if source is not None:
                key = self.keys()[0].get_secret_value().encode()
                request.headers[TICKET_HEADER] = sign(source, key, int(self.now()))
        yield request


def dev_ticket_key() -> bytes:
    from qrpay.kernel.config import load_secdist

    return load_secdist(DEV_SECDIST).service_ticket_keys[0].get_secret_value().encode()


def ticket_headers(source: str = TOOLS_IDENTITY, now: float | None = None) -> dict[str, str]:
    """Headers of a call as ``source``, signed with the development key at ``now`` (the
    service's clock; the system clock by default), valid for minutes."""
    issued = int(time.time() if now is None else now)
    return {TICKET_HEADER: sign(source, dev_ticket_key(), issued)}


def tools_session(ctx: ServiceContext) -> HttpSession:
    """A client session calling as the tools, on ``ctx``'s clock and keys."""
    return HttpSession(ticket=TicketSigner(TOOLS_IDENTITY, ctx.ticket_keys, ctx.unix_now).ticket)
