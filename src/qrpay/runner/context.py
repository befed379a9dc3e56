"""The composition of one service process from settings: config files, context, app."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from qrpay.kernel.callers import unknown_callers
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceApp, ServiceContext
from qrpay.kernel.settings import Settings
from qrpay.runner.config import CALLER_NAMES, runtime_for_settings
from qrpay.runner.registry import (
    SERVICE_MODULES,
    has_database,
    known_services,
    services_with_database,
)

__all__ = ["has_database", "known_services", "services_with_database"]


def make_context(
    service: str,
    settings: Settings,
    *,
    background_jobs: bool = True,
    queue: TaskQueue | None = None,
    queue_workers: bool = False,
) -> ServiceContext:
    runtime = runtime_for_settings(settings, service)
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


def service_app(service: str) -> ServiceApp:
    """The service's declaration (its ``app.py``), its callers checked against the registry."""
    declaration: ServiceApp = importlib.import_module(SERVICE_MODULES[service]).SERVICE
    unknown_callers(declaration.router.routes, CALLER_NAMES)
    return declaration


def build_app(ctx: ServiceContext) -> FastAPI:
    """The app of the service ``ctx`` names."""
    return service_app(ctx.name).build(ctx)


def import_service_module(service: str) -> None:
    """Fail early, with the service's name, when its package is not there."""
    importlib.import_module(SERVICE_MODULES[service])
