"""What one running service is built from, and the one way every service app is built.

Each service package has ``app.py`` declaring ``SERVICE = ServiceApp(...)``: its
description, its router and ``wire(ctx) -> Wiring`` (what to build from the context:
the database, the services routes reach, background jobs, start and stop hooks). It
is the only place that wires that service's real adapters. ``ServiceApp.build`` makes
the FastAPI app with the one lifespan every service shares (``running``), and routes
reach a service one typed way: ``Annotated[OrderService, Depends(provide(OrderService))]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import structlog
from fastapi import APIRouter, FastAPI, Request
from pydantic import SecretStr
from starlette.types import ASGIApp

from qrpay.kernel.callers import CallerCheck
from qrpay.kernel.clock import Clock, SystemClock
from qrpay.kernel.config import DependencyConfig, HttpConfig, KernelConfig, LimitName
from qrpay.kernel.db import Database
from qrpay.kernel.http import create_app
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.ratelimit import RateLimiter
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.settings import Settings
from qrpay.kernel.tickets import TicketSigner, TicketVerifier


class QueueRequired(RuntimeError):
    """The service puts or consumes queue tasks and was given no queue: it refuses to start."""


# The product's config model (``runner.config``), for the services' typing.
C = TypeVar("C", bound=KernelConfig)


@dataclass
class ServiceContext(Generic[C]):
    name: str
    settings: Settings
    runtime: RuntimeConfig[C]
    clock: Clock = field(default_factory=SystemClock)
    metrics: ServiceMetrics = field(init=False)
    http: HttpSession = field(default_factory=HttpSession)
    # Periodic jobs (TTL closing, hold release, outbox relays) run in the app's process.
    run_background_jobs: bool = True
    # The durable queue: in memory and shared by every service in the embedded mode,
    # on PostgreSQL (secdist ``queue_database``) in production.
    queue: TaskQueue | None = None
    # Queue consumers run inside the app only in the embedded mode; production runs
    # them as ``qrpay worker NAME``.
    run_queue_workers: bool = False
    # The app closes ``queue`` when it stops (``qrpay serve``: one queue per process);
    # in the embedded mode the queue is shared and closed by its owner.
    owns_queue: bool = False

    tickets: TicketSigner = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(self.name)
        # Every call this service's clients make carries its ticket (kernel.tickets). The
        # tickets live on the wall clock, not ``clock``: the caller and the callee must
        # agree on it, and a test's frozen business time must not make them expire.
        self.tickets = TicketSigner(self.name, self.signing_keys, time.time)
        self.http.ticket = self.tickets.ticket

    def signing_keys(self) -> tuple[SecretStr, ...]:
        """This service's private ticket keys (the first signs)."""
        return self.runtime.secdist.ticket_keys.signing(self.name)

    def callers_keys(self) -> dict[str, tuple[str, ...]]:
        """The public ticket keys of the services that may call this one, by service."""
        return self.runtime.secdist.ticket_keys.public

    def caller_check(self) -> CallerCheck:
        """How this service's routes check who calls them (kernel.callers)."""
        runtime = self.runtime
        return CallerCheck(
            TicketVerifier(self.name, self.callers_keys, time.time),
            self.metrics.service_ticket_refusals,
            lambda: runtime.config.service_tickets.tools_allowed,
        )

    def required_queue(self) -> TaskQueue:
        """``queue``, or ``QueueRequired`` for a service that cannot work without one."""
        if self.queue is None:
            raise QueueRequired(
                f"{self.name} needs the task queue: set queue_database in secdist "
                "(production) or run it with `qrpay up` (embedded)"
            )
        return self.queue

    def database_url(self) -> str:
        return self.settings.database_url(self.name, self.runtime.secdist.databases)

    def database_pool_size(self) -> int:
        return self.runtime.config.database_pools.size_for(self.name)

    def dependency(self, service: str) -> Callable[[], DependencyConfig]:
        runtime = self.runtime
        return lambda: runtime.config.dependency(service)

    def max_body(self) -> int:
        return self.runtime.config.http.max_body_bytes

    def max_in_flight(self) -> int:
        return self.runtime.config.http.max_in_flight

    def http_config(self) -> HttpConfig:
        return self.runtime.config.http

    def rate_limiter(self, name: LimitName) -> RateLimiter:
        """A limit of this instance, following the live config (``limits.<name>``)."""
        runtime = self.runtime
        return RateLimiter(
            name,
            rule=lambda: runtime.config.limits.rule(name),
            max_keys=lambda: runtime.config.limits.max_keys,
            clock=self.clock,
            refused=self.metrics.rate_limited,
        )


log = structlog.get_logger("qrpay.service")

T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    """A background task that runs while the service runs; cancelled when it stops."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Wiring:
    """What a service builds from its context, for the one lifespan to run and close.

    ``services`` are what routes reach, by type (``provide``). ``ready`` defaults to a
    ping of ``database``. Start: config watching, ``on_start`` in order, then ``jobs``.
    Stop: jobs (newest first), ``on_stop``, config watching, the database, the HTTP
    session, and the queue when the context owns it.
    """

    services: Sequence[object] = ()
    database: Database | None = None
    jobs: Sequence[Job] = ()
    on_start: Sequence[Hook] = ()
    on_stop: Sequence[Hook] = ()
    ready: Hook | None = None


@dataclass(frozen=True)
class ServiceApp:
    """One service's declaration: everything ``build`` needs beyond the shared shape."""

    description: str
    router: APIRouter
    wire: Callable[[ServiceContext], Wiring]
    mounts: Sequence[tuple[str, str, Callable[[], ASGIApp]]] = ()
    # Reached from outside (browsers, POS): /metrics and the API docs only for
    # http.internal_networks (kernel.edge).
    public: bool = False
    # Off: the routes marked ``@served_fast`` go through FastAPI too (kernel/fast_routes.py),
    # to compare the two answers.
    serve_fast: bool = True

    def build(self, ctx: ServiceContext) -> FastAPI:
        wiring = self.wire(ctx)

        async def ping_database() -> None:
            # Read at call time: a test may re-point the app at another database.
            await app.state.db.ping()

        ready = wiring.ready or (ping_database if wiring.database is not None else None)
        app = create_app(
            service=ctx.name,
            metrics=ctx.metrics,
            max_body=ctx.max_body,
            max_in_flight=ctx.max_in_flight,
            lifespan=lambda _app: running(ctx, wiring),
            ready=ready,
            description=self.description,
            http=ctx.http_config,
            public=self.public,
            router=self.router,
            serve_fast=self.serve_fast,
        )
        for path, name, make in self.mounts:
            app.mount(path, make(), name=name)
        app.state.db = wiring.database
        app.state.callers = ctx.caller_check()
        app.state.services = {type(service): service for service in wiring.services}
        return app


@contextlib.asynccontextmanager
async def running(ctx: ServiceContext, wiring: Wiring) -> AsyncIterator[None]:
    """The one lifespan: start what ``wiring`` needs, yield while serving, close it all."""
    ctx.runtime.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        for start in wiring.on_start:
            await start()
        tasks = [asyncio.create_task(job.run(), name=job.name) for job in wiring.jobs]
        yield
    finally:
        # Requests tallied since the last flush count too (several workers: their files stay).
        ctx.metrics.flush()
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        closers: list[Hook] = [*wiring.on_stop, ctx.runtime.stop]
        if wiring.database is not None:
            closers.append(wiring.database.dispose)
        closers.append(ctx.http.close)
        if ctx.owns_queue and ctx.queue is not None:
            closers.append(ctx.queue.close)
        for close in closers:
            try:
                await close()
            except Exception as exc:
                # Close the rest anyway.
                log.warning("close_failed", service=ctx.name, error=repr(exc))


Seconds = float | Callable[[], float]


async def every(
    seconds: Seconds,
    job: Callable[[], Awaitable[object]],
    name: str,
    *,
    after_failure: Seconds | None = None,
) -> None:
    """Run ``job`` every ``seconds`` until cancelled; a failure is logged, not fatal.

    ``seconds`` may be a function, read every round (a config reload changes it); a
    failed round is followed by ``after_failure`` seconds instead, when given (a job that
    waits by itself, like a long-poll, runs again at once but not in a hot loop on errors).
    """
    while True:
        pause = seconds
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("background_job_failed", job=name, error=repr(exc))
            pause = seconds if after_failure is None else after_failure
        await asyncio.sleep(pause() if callable(pause) else pause)


def service_of(app: FastAPI, kind: type[T]) -> T:
    """The service of type ``kind`` that the app's wiring built."""
    return cast(T, app.state.services[kind])


def provide(kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency giving the app's ``kind``: ``Depends(provide(OrderService))``."""

    # Async: a sync dependency would hop to the thread pool on every request.
    async def dependency(request: Request) -> T:
        return cast(T, request.app.state.services[kind])

    return dependency
