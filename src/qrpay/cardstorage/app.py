"""cardstorage's composition root: the only place that wires its real adapters."""

from __future__ import annotations

from qrpay.cardstorage.api import router
from qrpay.cardstorage.service import PaymentMethodService
from qrpay.kernel.db import Database
from qrpay.kernel.service import ServiceApp, ServiceContext, Wiring


def wire(ctx: ServiceContext) -> Wiring:
    db = Database(ctx.database_url(), pool_size=ctx.database_pool_size())
    return Wiring(database=db, services=[PaymentMethodService(db, ctx.clock)])


SERVICE = ServiceApp(
    description="A user's saved payment methods: tokens and masks, never card numbers.",
    router=router,
    wire=wire,
)
