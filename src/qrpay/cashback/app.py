"""cashback's composition root: the only place that wires its real adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qrpay.cashback.api import router
from qrpay.cashback.metrics import CashbackMetrics
from qrpay.cashback.service import CashbackService
from qrpay.kernel.db import Database
from qrpay.kernel.service import ServiceApp, ServiceContext, Wiring

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    db = Database(ctx.database_url(), pool_size=ctx.database_pool_size())
    service = CashbackService(
        db,
        ctx.clock,
        CashbackMetrics.register(ctx.metrics),
        # The live config, so a reload flips the switch without a restart.
        failing=lambda: ctx.runtime.config.cashback_service.fail_accruals,
    )
    return Wiring(database=db, services=[service])


SERVICE = ServiceApp(
    description="The cashback ledger: one accrual per order, balances and history.",
    router=router,
    wire=wire,
)
