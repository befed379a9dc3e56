"""The base of every typed service-to-service client.

One shared ``aiohttp.ClientSession`` per service; the downstream's base URL,
timeout and retries come from the live config on every call, so a config
reload re-points a client without a restart. A call gets a deadline: each
try gets at most the time left (retries and their pauses included), and only
idempotent calls are retried. Failures become ``QrpayError``s: 4xx answers keep
the downstream's code, anything else is ``DependencyUnavailable``.

A failure that sent nothing (a full bulkhead, a connection that could not be made) is
``NotSent``, a ``DependencyUnavailable``: a caller of a call that is not idempotent
knows nothing happened there, where any other failure leaves the outcome unknown.

Bulkhead: at most ``services.<name>.max_in_flight`` callers of a client (a
service has one per downstream) wait on its downstream at once; one more fails fast with ``DependencyUnavailable``.
A slow downstream then holds a bounded share of the instance's requests
(``http.max_in_flight``) and of the shared connection pool, and the endpoints
that do not need it keep answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
import structlog
from pydantic import BaseModel

from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import DependencyUnavailable, ErrorKind, QrpayError, error_for_kind
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.request_context import REQUEST_ID_HEADER, current_request_id
from qrpay.kernel.tickets import TICKET_HEADER

log = structlog.get_logger("qrpay.client")

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})

Model = TypeVar("Model", bound=BaseModel)
# Query parameters; pairs when a name repeats (``items=1&items=2``).
Params = Mapping[str, str] | Sequence[tuple[str, str]]


def unavailable_code(downstream: str) -> str:
    """``<downstream>_unavailable``: the code of a downstream's failure that is not its 4xx."""
    return f"{downstream.replace('-', '_')}_unavailable"


def failure_reason(exc: BaseException) -> str:
    """A connection failure in a few words: ``connection refused``, ``timed out``."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return " ".join(str(text).split()).lower()


class NotSent(DependencyUnavailable):
    """The call never left this process or never reached the downstream: nothing happened
    there (a full bulkhead; a connection refused, unresolved or not made in time)."""


def never_sent(exc: BaseException) -> bool:
    """Whether a failed try ended before its request was written: aiohttp raises these
    while it gets a connection, and writes the request only on one it got."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


# Where the use case this call serves must be done (``call_budget``): no call outlives it.
_BUDGET_ENDS: ContextVar[float | None] = ContextVar("qrpay_call_budget_ends", default=None)


@contextmanager
def call_budget(seconds: float) -> Iterator[None]:
    """Every call made inside ends within ``seconds`` from now: one budget for a use case's
    downstream calls together, so its caller, which waits the whole budget, never gives
    up first. Nested budgets keep the earlier end."""
    ends = time.monotonic() + seconds
    outer = _BUDGET_ENDS.get()
    token = _BUDGET_ENDS.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _BUDGET_ENDS.reset(token)


# The bulkheads whose slot the current task already holds (or works for, see
# ``Bulkhead.covered``): a call made there does not take a second slot.
_HELD: ContextVar[frozenset[Bulkhead]] = ContextVar("qrpay_bulkheads_held", default=frozenset())


class Bulkhead:
    """At most ``limit()`` callers waiting on one downstream at once; one more fails fast.

    It counts callers, not calls: a caller holding a slot makes its retries, and any
    further call to the same downstream, within that slot. The limit is read on every
    entry, so a config reload changes it at once.
    """

    def __init__(self, downstream: str, limit: Callable[[], int]) -> None:
        self.downstream = downstream
        self._limit = limit
        self.in_flight = 0
        self.refused = 0

    def holds(self) -> bool:
        return self in _HELD.get()

    @contextmanager
    def slot(self, on_refused: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold a slot for the block, or raise ``DependencyUnavailable`` at once if none is free."""
        if self.holds():
            yield
            return
        limit = self._limit()
        if self.in_flight >= limit:
            self.refused += 1
            if on_refused is not None:
                on_refused()
            raise NotSent(
                f"{self.downstream}: {limit} requests are already waiting on it",
                code=unavailable_code(self.downstream),
            )
        self.in_flight += 1
        token = _HELD.set(_HELD.get() | {self})
        try:
            yield
        finally:
            _HELD.reset(token)
            self.in_flight -= 1

    @contextmanager
    def covered(self) -> Iterator[None]:
        """Calls in the block take no slot: they are made for callers that each hold one.

        For a call that serves several waiting callers (a coalesced read), made from a
        task of its own: the waiters are counted, the shared call is not counted again.
        """
        token = _HELD.set(_HELD.get() | {self})
        try:
            yield
        finally:
            _HELD.reset(token)


class HttpSession:
    """A lazily opened ``aiohttp.ClientSession`` shared by a service's clients.

    ``ticket`` gives the caller's service ticket for a destination (``kernel.tickets``):
    every call made through the session carries the one for the service it calls.
    """

    def __init__(self, *, limit: int = 200, ticket: Callable[[str], str] | None = None) -> None:
        self._limit = limit
        self.ticket = ticket
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda value: orjson.dumps(value).decode(),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str]


class ServiceClient:
    """Calls one downstream service over HTTP."""

    downstream: str = ""

    def __init__(
        self,
        *,
        session: HttpSession,
        dependency: Callable[[], DependencyConfig],
        metrics: ServiceMetrics,
        max_in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._session = session
        self._dependency = dependency
        self._metrics = metrics
        # A service has one client per downstream, so this is the downstream's bulkhead;
        # ``max_in_flight`` bounds a second client of it kept apart (long-polls, say).
        self.bulkhead = Bulkhead(
            self.downstream, max_in_flight or (lambda: dependency().max_in_flight)
        )

    @contextmanager
    def reserve(self, endpoint: str) -> Iterator[None]:
        """Hold a slot of this downstream's bulkhead for the block, or fail fast.

        Calls inside use it; so does a wait for a shared call made elsewhere under
        ``bulkhead.covered()``. A refusal counts as the ``bulkhead_full`` outcome.
        """

        def refused() -> None:
            self._metrics.downstream_requests.labels(
                self.downstream, endpoint, "bulkhead_full"
            ).inc()

        with self.bulkhead.slot(refused):
            yield

    async def fetch(
        self,
        model: type[Model],
        method: str,
        path: str,
        *,
        endpoint: str,
        idempotent: bool = True,
        json: BaseModel | Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        deadline_ms: int | None = None,
    ) -> Model:
        """``call`` with the answer validated as ``model``; a model ``json`` is sent as its JSON."""
        if isinstance(json, BaseModel):
            json = json.model_dump(mode="json")
        body = await self.call(
            method,
            path,
            endpoint=endpoint,
            idempotent=idempotent,
            json=json,
            params=params,
            headers=headers,
            deadline_ms=deadline_ms,
        )
        return model.model_validate(body)

    async def call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        idempotent: bool,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        deadline_ms: int | None = None,
    ) -> Any:
        """Call and parse the JSON answer; a 4xx becomes the matching ``QrpayError``."""
        answer = await self.exchange(
            method,
            path,
            endpoint=endpoint,
            idempotent=idempotent,
            body=None if json is None else orjson.dumps(json),
            params=params,
            headers=headers,
            deadline_ms=deadline_ms,
        )
        return self.body_of(answer)

    def body_of(self, answer: RawAnswer) -> Any:
        """The parsed JSON of a 2xx/3xx answer; a 4xx becomes the matching ``QrpayError``."""
        if answer.status >= 400:
            raise self._error_from_answer(answer.status, answer.body)
        try:
            return orjson.loads(answer.body) if answer.body else None
        except orjson.JSONDecodeError:
            raise DependencyUnavailable(
                f"{self.downstream} answered something that is not JSON",
                code=unavailable_code(self.downstream),
            ) from None

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        idempotent: bool,
        body: bytes | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        deadline_ms: int | None = None,
        try_timeout_ms: int | None = None,
    ) -> RawAnswer:
        """The downstream's final answer as it came (any status below 500), within the deadline.

        Connection errors, timeouts and 5xx are retried (idempotent calls only)
        while time is left, then become ``DependencyUnavailable`` whose ``details`` say
        what the last try met: ``{"status", "body"}`` of a 5xx answer, or ``{"reason"}``
        (``connection refused``, ``timed out``); ``NotSent`` when no try was sent; a full
        bulkhead fails at once. One try waits at most ``try_timeout_ms`` (the dependency's
        ``timeout_ms`` by default): longer for a callee whose own budget is longer.
        """
        with self.reserve(endpoint):
            return await self._exchange(
                method,
                path,
                endpoint=endpoint,
                idempotent=idempotent,
                body=body,
                params=params,
                headers=headers,
                deadline_ms=deadline_ms,
                try_timeout_ms=try_timeout_ms,
            )

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        idempotent: bool,
        body: bytes | None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        headers: Mapping[str, str] | None,
        deadline_ms: int | None,
        try_timeout_ms: int | None,
    ) -> RawAnswer:
        dependency = self._dependency()
        try_timeout = (try_timeout_ms or dependency.timeout_ms) / 1000
        budget = (deadline_ms if deadline_ms is not None else dependency.timeout_ms) / 1000
        deadline = time.monotonic() + budget
        ends = _BUDGET_ENDS.get()
        if ends is not None:
            deadline = min(deadline, ends)
        tries = 1 + (dependency.retries if idempotent else 0)
        request_headers = {"Content-Type": "application/json"}
        request_id = current_request_id()
        if request_id:
            request_headers[REQUEST_ID_HEADER] = request_id
        if headers:
            request_headers.update(headers)
        if self._session.ticket is not None:
            # After the given headers: a forwarded call never passes on someone else's.
            request_headers[TICKET_HEADER] = self._session.ticket(self.downstream)
        url = dependency.base_url.rstrip("/") + path
        last_reason = "no try was made"
        # What the last try met, for the caller: {"status", "body"} of a 5xx, or {"reason"}.
        last_failure: dict[str, Any] = {"reason": "no time left"}
        sent = False
        for attempt in range(tries):
            remaining = deadline - time.monotonic()
            if remaining <= 0.001:
                break
            per_try = min(remaining, try_timeout)
            started = time.perf_counter()
            outcome = "error"
            try:
                async with self._session.get().request(
                    method,
                    url,
                    data=body,
                    params=params,
                    headers=request_headers,
                    timeout=aiohttp.ClientTimeout(total=per_try),
                    allow_redirects=False,
                ) as response:
                    raw = await response.read()
                    status = response.status
                    answer_headers = response.headers.copy()
                outcome = str(status)
                if status not in RETRYABLE_STATUSES and status < 500:
                    return RawAnswer(status, raw, answer_headers)
                sent = True
                last_reason = f"{self.downstream} answered {status}"
                last_failure = {"status": status, "body": raw}
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                sent = sent or not never_sent(exc)
                if isinstance(exc, TimeoutError):
                    outcome = "timeout"
                    last_reason = f"{self.downstream} did not answer in {per_try * 1000:.0f} ms"
                    last_failure = {"reason": "timed out"}
                else:
                    outcome = "connection_error"
                    last_reason = f"{self.downstream} unreachable: {type(exc).__name__}"
                    last_failure = {"reason": failure_reason(exc)}
            except asyncio.CancelledError:
                # The caller gave up (its own deadline): not the downstream's failure.
                outcome = "cancelled"
                raise
            finally:
                self._metrics.downstream_requests.labels(self.downstream, endpoint, outcome).inc()
                self._metrics.downstream_latency.labels(self.downstream, endpoint).observe(
                    time.perf_counter() - started
                )
            if attempt + 1 < tries:
                pause = dependency.retry_backoff_ms / 1000 * (2**attempt)
                if time.monotonic() + pause >= deadline:
                    break
                await asyncio.sleep(pause)
        log.warning(
            "downstream_failed", downstream=self.downstream, endpoint=endpoint, reason=last_reason
        )
        failure = DependencyUnavailable if sent else NotSent
        raise failure(last_reason, code=unavailable_code(self.downstream), details=last_failure)

    def _error_from_answer(self, status: int, raw: bytes) -> QrpayError:
        from qrpay.kernel.http import KIND_BY_STATUS

        kind = KIND_BY_STATUS.get(status, ErrorKind.INTERNAL)
        try:
            body = orjson.loads(raw)
            code, message = str(body["code"]), str(body["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            code, message = f"{self.downstream.replace('-', '_')}_error", f"status {status}"
        if kind is ErrorKind.INTERNAL:
            return DependencyUnavailable(message, code=code)
        return error_for_kind(kind, code, message)
