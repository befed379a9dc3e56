"""transactions' composition root: the only place that wires its real adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qrpay.kernel.db import Database
from qrpay.kernel.service import Job, ServiceApp, ServiceContext, Wiring
from qrpay.transactions.api import router
from qrpay.transactions.gateway import build_gateway
from qrpay.transactions.jobs import run_relay_loop
from qrpay.transactions.metrics import TransactionsMetrics
from qrpay.transactions.service import TransactionsService

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    # It reports outcomes by queue tasks: it cannot run without a queue.
    queue = ctx.required_queue()
    db = Database(ctx.database_url(), pool_size=ctx.database_pool_size())
    runtime = ctx.runtime
    service = TransactionsService(
        db,
        ctx.clock,
        TransactionsMetrics.register(ctx.metrics),
        build_gateway(lambda: runtime.config.transactions.gateway),
        queue,
        lambda: runtime.config.transactions,
        # Tests without background jobs drive processing step by step themselves.
        process_inline=ctx.run_background_jobs,
    )
    relay = Job(
        "transactions-relay", lambda: run_relay_loop(service, lambda: runtime.config.transactions)
    )
    return Wiring(
        database=db,
        services=[service],
        on_start=[queue.open],
        jobs=[relay] if ctx.run_background_jobs else [],
        on_stop=[service.close],
    )


SERVICE = ServiceApp(
    description="Invoices and their hold/clear/unhold operations through a payment gateway.",
    router=router,
    wire=wire,
)
