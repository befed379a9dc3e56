"""eda's composition root: the only place that wires its real adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from qrpay.eda.api import router
from qrpay.eda.jobs import refresh_open_orders, run_ttl_loop
from qrpay.eda.metrics import EdaMetrics
from qrpay.eda.payment_service import PaymentService
from qrpay.eda.repository import CHANGES_CHANNEL
from qrpay.eda.retention import apply_retention
from qrpay.eda.service import OrderService
from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.db import Database, is_sqlite
from qrpay.kernel.pg_listen import PgListener
from qrpay.kernel.service import Job, ServiceApp, ServiceContext, Wiring, every

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

log = structlog.get_logger("qrpay.eda")


def _retention(ctx: ServiceContext[QrpayConfig], db: Database) -> Job:
    def config() -> RetentionConfig:
        return ctx.runtime.config.retention

    return Job(
        "eda-retention",
        lambda: every(
            lambda: config().interval_seconds,
            lambda: apply_retention(db, ctx.clock, config()),
            "eda-retention",
        ),
    )


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    db = Database(ctx.database_url(), pool_size=ctx.database_pool_size())
    service = OrderService(
        db,
        ctx.clock,
        EdaMetrics.register(ctx.metrics),
        recheck_seconds=lambda: ctx.runtime.config.feed.recheck_ms / 1000,
    )

    async def refresh_gauge() -> None:
        try:
            await refresh_open_orders(service)
        except Exception as exc:
            # Start anyway: readiness reports the database, the job retries the gauge.
            log.warning("open_orders_refresh_failed", error=repr(exc))

    ttl = Job("eda-ttl", lambda: run_ttl_loop(service, lambda: ctx.runtime.config.orders))
    jobs = [ttl, _retention(ctx, db)] if ctx.run_background_jobs else []
    if not is_sqlite(db.url):
        # Writes of every eda instance wake this one's feed long-polls at their commit
        # (SQLite has one process: its writes wake them in-process, ``OrderService.changed``).
        listener = PgListener(
            db.url,
            CHANGES_CHANNEL,
            service.changed.fire,
            retry_seconds=lambda: ctx.runtime.config.feed.retry_ms / 1000,
        )
        service.listener = listener
        jobs.append(Job("eda-changes-listener", listener.run))
    return Wiring(
        database=db,
        services=[service, PaymentService(service)],
        on_start=[refresh_gauge],
        jobs=jobs,
    )


SERVICE = ServiceApp(
    description="The system of record for restaurant orders.",
    router=router,
    wire=wire,
)
