"""Hot routes served before FastAPI's router, derived from their FastAPI declaration.

Measured under `make bench-pos` (py-spy, 2026-12-01): for the POS routes, FastAPI's
routing, dependency solving and body handling took about 55% of the POS service's CPU,
the route's own work under 10%. A route marked ``@served_fast`` is declared once, on its
router, like any other; ``FastRoute`` compiles that declaration when the app is built and
serves it without those layers:

- the body is parsed with orjson where it reads the same value as FastAPI's ``json.loads``;
- the query, the headers and the body are validated by FastAPI's own functions over the
  route's own fields (``request_params_to_args``, ``request_body_to_args``), so every
  limit declared on a parameter or a model applies here by construction;
- the route's dependencies (its callers, the service, the POS key) are called in
  FastAPI's order, with its per-request cache, then the endpoint itself.

Everything is validated before any dependency runs. A request that does not pass (bad
JSON, another content type, a value the declaration refuses, a body cut off over the
size limit) is handed, untouched, to FastAPI, which answers it with its own status, code
and body; nothing ran for it here, so no dependency (a rate limit's token) runs twice.
An exception raised by a dependency or the endpoint is answered by the app's own
exception handlers, as FastAPI would.

A route with path parameters is matched by its own pattern and converters, and only where
FastAPI's router would pick it: a request an earlier declared route also matches goes to
FastAPI. A declaration this cannot serve faithfully (cookies, forms, a sync or generator
dependency) is refused when the app is built, never skipped silently. A fast
endpoint answers a ``Response`` it builds itself, so both paths send the same bytes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    _should_embed_body_fields,
    request_body_to_args,
    request_params_to_args,
)
from fastapi.params import Form
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

E = TypeVar("E", bound=Callable[..., Any])
_MARK = "__qrpay_served_fast__"
_JSON = "application/json"


def served_fast(endpoint: E) -> E:
    """Serve this route before FastAPI's router (``FastRoute``). Goes under the route's
    decorator: ``@router.post(...)`` then ``@served_fast``."""
    setattr(endpoint, _MARK, True)
    return endpoint


class NotJson(Exception):
    """The body is not one FastAPI would parse as the same JSON value."""


def json_body(scope: Scope, body: bytes) -> Any:
    """The body's JSON value; ``NotJson`` where FastAPI might not read the same value.

    FastAPI parses a body with a JSON content type with ``json.loads`` (and refuses one
    without a content type). orjson reads the same value wherever it reads one at all:
    it refuses NaN, integers past 64 bits, lone surrogates and other encodings, which
    then go to FastAPI, as do the other JSON media types (``+json``) and an empty body.
    """
    content_type = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            content_type = value.decode("latin-1")
            break
    if not body or content_type is None:
        raise NotJson
    if content_type.split(";", 1)[0].strip().lower() != _JSON:
        raise NotJson
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotJson from None


@dataclass(frozen=True, slots=True)
class _Step:
    """One dependant of the route's tree (a dependency, or the endpoint last), with what a
    request needs of it worked out once."""

    call: Callable[..., Any]
    use_cache: bool
    # The keyword and plan index of each of its own dependencies' values, in FastAPI's order.
    needs: tuple[tuple[str, int], ...]
    # Its parameters by where they are read from: the path, the query, the headers.
    params: tuple[tuple[str, list[ModelField]], ...]
    body: list[ModelField]
    # The one field the whole body is (not embedded), validated as FastAPI validates it
    # then (``request_body_to_args``), without the per-call checks of how it is embedded.
    whole_body: ModelField | None
    # Its parameters that take the request itself.
    request_names: tuple[str, ...]
    # The earlier step whose value it is (the same dependency, cached per request).
    same_as: int | None

    @classmethod
    def of(
        cls,
        dependant: Dependant,
        needs: tuple[tuple[str, int], ...],
        embed_body_fields: bool,
        same_as: int | None,
    ) -> _Step:
        assert dependant.call is not None
        params = tuple(
            (source, fields)
            for source, fields in (
                ("path_params", dependant.path_params),
                ("query_params", dependant.query_params),
                ("headers", dependant.header_params),
            )
            if fields
        )
        names = (dependant.http_connection_param_name, dependant.request_param_name)
        body = dependant.body_params
        whole = len(body) == 1 and not embed_body_fields and not _should_embed_body_fields(body)
        return cls(
            dependant.call,
            dependant.use_cache,
            needs,
            params,
            body,
            body[0] if whole else None,
            tuple(name for name in names if name),
            same_as,
        )


def _is_async(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - a callable instance's method
    )


def _refuse(route: RouteContext, why: str) -> ValueError:
    return ValueError(f"{route.path}: cannot be served fast: {why}")


def _plan(route: RouteContext) -> list[_Step]:
    """The route's dependants in the order FastAPI calls them: each one's dependencies
    first, in declaration order; the endpoint last."""
    plan: list[_Step] = []

    def add(dependant: Dependant) -> int:
        needs = tuple(
            (sub.name, index)
            for sub, index in ((sub, add(sub)) for sub in dependant.dependencies)
            if sub.name is not None
        )
        unsupported = [
            kind
            for kind, present in (
                ("cookies", dependant.cookie_params),
                ("a WebSocket", dependant.websocket_param_name),
                ("background tasks", dependant.background_tasks_param_name),
                ("a response parameter", dependant.response_param_name),
                ("security scopes", dependant.security_scopes_param_name),
            )
            if present
        ]
        if unsupported:
            raise _refuse(route, ", ".join(unsupported))
        if dependant.call is None or not _is_async(dependant.call):
            raise _refuse(route, f"{dependant.call!r} is not an async function")
        same_as = None
        if dependant.use_cache:
            same_as = next((i for i, step in enumerate(plan) if step.call is dependant.call), None)
        plan.append(_Step.of(dependant, needs, route._embed_body_fields, same_as))
        return len(plan) - 1

    add(route.dependant)
    return plan


class FastRoute:
    """A FastAPI route of ``app`` compiled to be served without FastAPI's layers.

    ``route`` is the route as the app serves it (FastAPI's ``RouteContext``: the router's
    prefix and the dependencies of its inclusion applied), as its OpenAPI document reads it.
    """

    def __init__(
        self, app: FastAPI, route: RouteContext, earlier: Sequence[RouteContext] = ()
    ) -> None:
        if route.methods is None or len(route.methods) != 1:
            raise _refuse(route, "not one method")
        if route.path_format is None:
            raise _refuse(route, "no path")
        if route.body_field is not None and isinstance(route.body_field.field_info, Form):
            raise _refuse(route, "a form body")
        self.app = app
        # What FastAPI's router puts in the scope: the metrics' handler label, the callers'.
        self.route = route.original_route
        (self.method,) = route.methods
        self.path = route.path_format
        self.pattern: re.Pattern[str] | None = None
        if "{" in self.path:
            self.pattern = route.path_regex
            self.convertors: dict[str, Any] = route.param_convertors
        # The routes FastAPI tries first that could take a request of this one's method.
        self.earlier = tuple(
            pattern
            for pattern, methods in ((r.path_regex, r.methods) for r in earlier)
            if pattern is not None and (methods is None or self.method in methods)
        )
        if self.pattern is None and self.taken_earlier(self.path):
            raise _refuse(route, "a route declared before it serves the same path")
        self.plan = _plan(route)
        self.reads_body = route.body_field is not None
        self.embed_body_fields: bool = route._embed_body_fields

    def match(self, path: str) -> dict[str, Any] | None:
        """The path parameters of ``path``, converted as Starlette converts them; None when
        the path is not this route's, or an earlier route takes it."""
        assert self.pattern is not None
        matched = self.pattern.match(path)
        if matched is None or self.taken_earlier(path):
            return None
        return {
            name: self.convertors[name].convert(value)
            for name, value in matched.groupdict().items()
        }

    def taken_earlier(self, path: str) -> bool:
        return any(pattern.match(path) for pattern in self.earlier)

    async def answer(self, scope: Scope, receive: Receive, body: bytes) -> Response | None:
        """The answer, or None for "FastAPI's to answer" (nothing has run for it here)."""
        if self.app.dependency_overrides:
            return None  # a test's overrides: FastAPI applies them
        received: Any = None
        if self.reads_body:
            try:
                received = json_body(scope, body)
            except NotJson:
                return None
        request = Request(scope, receive)
        arguments: list[dict[str, Any]] = []
        for step in self.plan:
            values: dict[str, Any] = {}
            for source, fields in step.params:
                got, errors = request_params_to_args(fields, getattr(request, source))
                if errors:
                    return None
                values.update(got)
            if step.whole_body is not None:
                value, errors = step.whole_body.validate(received, values, loc=("body",))
                if errors:
                    return None
                values[step.whole_body.name] = value
            elif step.body:
                got, errors = await request_body_to_args(
                    body_fields=step.body,
                    received_body=received,
                    embed_body_fields=self.embed_body_fields,
                )
                if errors:
                    return None
                values.update(got)
            for name in step.request_names:
                values[name] = request
            arguments.append(values)
        try:
            answer = await self._run(arguments)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                raise
            answered = handler(request, error)
            return await answered if inspect.isawaitable(answered) else answered
        if not isinstance(answer, Response):
            raise TypeError(f"{self.path}: a fast route's endpoint answers a Response")
        return answer

    async def _run(self, arguments: list[dict[str, Any]]) -> Any:
        """Each step called with its arguments and its dependencies' values, in order; a
        dependency used twice is called once (FastAPI's per-request cache)."""
        results: list[Any] = []
        for step, values in zip(self.plan, arguments, strict=True):
            if step.same_as is not None:
                results.append(results[step.same_as])
                continue
            for name, index in step.needs:
                values[name] = results[index]
            results.append(await step.call(**values))
        return results[-1]

    def _handler(self, error: Exception) -> Callable[..., Any] | None:
        """The app's handler of ``error``, as its exception middleware finds one (the
        catch-all ``Exception`` one answers outside, as for every route)."""
        for kind in type(error).__mro__:
            if kind is Exception:
                return None
            handler = self.app.exception_handlers.get(kind)
            if handler is not None:
                return handler
        return None


def fast_routes_of(app: FastAPI) -> list[FastRoute]:
    """The app's routes marked ``@served_fast``, compiled, in the router's order."""
    routes = list(iter_route_contexts(app.routes))
    return [
        FastRoute(app, route, routes[:position])
        for position, route in enumerate(routes)
        if isinstance(route.original_route, APIRoute) and getattr(route.endpoint, _MARK, False)
    ]


class FastRoutes:
    """ASGI middleware between the request middleware and FastAPI: serves ``routes``."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[FastRoute]) -> None:
        self.app = app
        self.routes = {
            (route.method, route.path): route for route in routes if route.pattern is None
        }
        self.patterned = [route for route in routes if route.pattern is not None]

    def _route(self, scope: Scope) -> FastRoute | None:
        method, path = scope["method"], scope["path"]
        route = self.routes.get((method, path))
        if route is not None:
            return route
        for candidate in self.patterned:
            if candidate.method == method:
                params = candidate.match(path)
                if params is not None:
                    scope["path_params"] = params
                    return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                # A disconnect (or the body cut off over the limit): FastAPI's to handle.
                await self.app(scope, _replay(read, receive), send)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        scope["route"] = route.route
        answer = await route.answer(scope, _replay(read, receive), body)
        if answer is None:
            await self.app(scope, _replay(read, receive), send)
            return
        await answer(scope, receive, send)


def _replay(read: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: the messages read come first."""
    pending = list(read)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
