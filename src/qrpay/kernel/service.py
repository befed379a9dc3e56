"""What one running service is built from: the composition root's inputs.

Each service package has ``app.py`` with ``build(ctx: ServiceContext) -> FastAPI``;
it is the only place that wires that service's real adapters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI

from qrpay.kernel.clock import Clock, SystemClock
from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.settings import Settings


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    runtime: RuntimeConfig
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

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(self.name)

    def database_url(self) -> str:
        return self.settings.database_url(self.name, self.runtime.secdist.databases)

    def dependency(self, service: str) -> Callable[[], DependencyConfig]:
        runtime = self.runtime
        return lambda: runtime.config.dependency(service)

    def max_body(self) -> int:
        return self.runtime.config.http.max_body_bytes

    def max_in_flight(self) -> int:
        return self.runtime.config.http.max_in_flight


# Services in start-up order: the ones others call come first.
SERVICE_MODULES: dict[str, str] = {
    "eda": "qrpay.eda.app",
    "cardstorage": "qrpay.cardstorage.app",
    "cashback": "qrpay.cashback.app",
    "transactions": "qrpay.transactions.app",
    "payments-eda": "qrpay.payments_eda.app",
    "iiko-integration": "qrpay.iiko_integration.app",
    "api-proxy": "qrpay.api_proxy.app",
}


def available_services() -> list[str]:
    return list(SERVICE_MODULES)


def build_app(ctx: ServiceContext) -> FastAPI:
    module = importlib.import_module(SERVICE_MODULES[ctx.name])
    app: FastAPI = module.build(ctx)
    return app
