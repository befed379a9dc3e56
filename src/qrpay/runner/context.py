"""The composition of one service process from settings: config files, context, app."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from qrpay.kernel.migrations import SERVICES_WITH_DATABASE, package_of
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.service import SERVICE_MODULES, ServiceContext, build_app
from qrpay.kernel.settings import Settings


def known_services() -> list[str]:
    # Read at call time: later issues add services to the dict.
    return list(SERVICE_MODULES)


def has_database(service: str) -> bool:
    return package_of(service) in SERVICES_WITH_DATABASE


def services_with_database() -> list[str]:
    return [name for name in known_services() if has_database(name)]


def make_context(
    service: str,
    settings: Settings,
    *,
    background_jobs: bool = True,
    queue: TaskQueue | None = None,
    queue_workers: bool = False,
) -> ServiceContext:
    runtime = RuntimeConfig.for_settings(settings, service)
    return ServiceContext(
        name=service,
        settings=settings,
        runtime=runtime,
        run_background_jobs=background_jobs,
        queue=queue,
        run_queue_workers=queue_workers,
    )


def durable_queue(ctx: ServiceContext) -> TaskQueue | None:
    """The production queue: PostgreSQL at secdist ``queue_database``, or None if not configured."""
    url = ctx.runtime.secdist.queue_database
    return TaskQueue(url, pool_size=ctx.runtime.config.database_pools.queue) if url else None


def build_service_app(ctx: ServiceContext, *, owns_queue: bool = False) -> FastAPI:
    """The service's app; with ``owns_queue`` the app closes ``ctx.queue`` when it stops."""
    ctx.owns_queue = owns_queue
    return build_app(ctx)


def import_service_module(service: str) -> None:
    """Fail early, with the service's name, when its package is not there."""
    importlib.import_module(SERVICE_MODULES[service])
