"""Who may call a route: the per-route allowlist of calling services (issue 11).

A route names its callers where it is declared::

    @router.put("/{method_id}", dependencies=[allow("some-service")])

or, when the handler needs to know who called (a check of who owns a record), as a
parameter: ``caller: Annotated[Caller, allow("some-service")]``. The caller is the
service its ``X-Ya-Service-Ticket`` names (``kernel.tickets``). No valid ticket is
401 ``service_ticket_invalid``, a caller the route does not name 403
``service_not_allowed``; both are counted in ``qrpay_service_ticket_refusals``
(route, caller, reason). Routes without a declaration (``/ping``, ``/ready``,
``/metrics``, the public POS, app and payer-page routes) keep their own auth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from prometheus_client import Counter

from qrpay.kernel.errors import Forbidden, Unauthenticated
from qrpay.kernel.tickets import (
    TICKET_HEADER,
    TOOLS_IDENTITY,
    Caller,
    CallerCode,
    Refusal,
    TicketInvalid,
    TicketVerifier,
)

UNKNOWN_CALLER = "unknown"


class CallerCheck:
    """One app's ticket check: its verifier, its refusal counter, the tools switch."""

    def __init__(
        self, verifier: TicketVerifier, refusals: Counter, tools_allowed: Callable[[], bool]
    ) -> None:
        self.verifier = verifier
        self.refusals = refusals
        self.tools_allowed = tools_allowed

    def caller(self, request: Request, allowed: frozenset[str], tools: bool) -> Caller:
        route = getattr(request.scope.get("route"), "path", None) or request.url.path
        try:
            ticket = self.verifier.verify(request.headers.get(TICKET_HEADER))
        except TicketInvalid as exc:
            self.refusals.labels(route, UNKNOWN_CALLER, exc.reason).inc()
            raise Unauthenticated(
                f"no valid service ticket ({exc.reason})",
                code=CallerCode.SERVICE_TICKET_INVALID,
            ) from None
        source = ticket.source
        if source in allowed or (source == TOOLS_IDENTITY and tools and self.tools_allowed()):
            return Caller(source, route, self.refusals)
        self.refusals.labels(route, source, Refusal.NOT_ALLOWED).inc()
        raise Forbidden(f"{source} may not call {route}", code=CallerCode.SERVICE_NOT_ALLOWED)


def declarations(dependant: Dependant) -> Iterator[Any]:
    """The ``allow(...)`` dependencies of a route's dependant, nested ones included."""
    for dependency in dependant.dependencies:
        if hasattr(dependency.call, "allowed_callers"):
            yield dependency.call
        yield from declarations(dependency)


def api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    """Every FastAPI route among ``routes``, those of included routers too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI keeps an included router as one entry holding the router it was given.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def callers_of(routes: Sequence[Any]) -> frozenset[str]:
    """The services any of ``routes`` lets call (the tools' identity left out)."""
    return frozenset(
        service
        for route in api_routes(routes)
        for declared in declarations(route.dependant)
        for service in declared.allowed_callers
    )


def allow(*services: str, tools: bool = False) -> Any:
    """The route's callers: these services (or the support tools, ``SUPPORT_IDENTITY``),
    and the tools' identity if ``tools`` (and the
    config's ``service_tickets.tools_allowed``). A ``Depends``, for ``dependencies=[...]``
    or an ``Annotated[Caller, ...]`` parameter. The names are checked against the
    product's services when its app is built (``unknown_callers``)."""
    if not services and not tools:
        raise ValueError("allow() names no known caller: none")
    allowed = frozenset(services)

    async def dependency(request: Request) -> Caller:
        check: CallerCheck = request.app.state.callers
        return check.caller(request, allowed, tools)

    dependency.allowed_callers = allowed  # type: ignore[attr-defined]
    dependency.allows_tools = tools  # type: ignore[attr-defined]
    return Depends(dependency)


def unknown_callers(routes: Sequence[Any], known: Iterable[str]) -> None:
    """ValueError when a route of ``routes`` lets a caller that is not ``known`` call it
    (a typo would refuse every call of the service it meant)."""
    unknown = callers_of(routes) - set(known)
    if unknown:
        raise ValueError(f"allow() names no known caller: {sorted(unknown)}")
