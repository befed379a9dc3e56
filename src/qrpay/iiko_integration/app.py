"""The composition root of iiko-integration: the only place its real adapters are wired."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from qrpay.eda.client import EdaClient
from qrpay.eda.follower import FeedGauges
from qrpay.iiko_integration.api import router
from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.config import LimitName
from qrpay.kernel.service import Job, ServiceApp, ServiceContext, Wiring
from qrpay.payments_eda.client import RefundsClient

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    service = IikoService(
        runtime=ctx.runtime,
        eda_client=EdaClient(
            session=ctx.http, dependency=ctx.dependency("eda"), metrics=ctx.metrics
        ),
        payments_client=RefundsClient(
            session=ctx.http, dependency=ctx.dependency("payments-eda"), metrics=ctx.metrics
        ),
        orders_created=ctx.metrics.counter(
            "qrpay_orders_created_with_qr",
            "Orders created from a POS pre-check, with a QR code to print",
            ("client_id",),
        ),
        push_subscribers=ctx.metrics.gauge(
            "qrpay_pos_push_subscribers",
            "POS connected for push to this instance: WebSocket streams and long-polls open",
            ("kind",),
            per_worker=True,
        ),
        stream_refusals=ctx.metrics.counter(
            "qrpay_pos_streams_refused",
            "WebSocket streams refused at the handshake: the key's or the instance's cap",
            ("reason",),
        ),
        clock=ctx.clock,
        pos_limit=ctx.rate_limiter(LimitName.POS_KEY),
        # Only where the follower runs: an instance without it has no lag to report.
        feed_gauges=FeedGauges.of(ctx.metrics) if ctx.run_background_jobs else None,
    )
    # Every instance follows eda's feed on its own: instances share nothing.
    follower = Job("iiko-feed-follower", service.follower.run)
    young = YoungGeneration()
    return Wiring(
        services=[service],
        jobs=[follower] if ctx.run_background_jobs else [],
        on_start=[young.start],
        on_stop=[young.stop],
    )


# CPython collects its youngest generation every 700 allocations: anything alive for a
# fraction of a second (an eda read, a stream's wait) reaches the oldest generation, and
# its growth by a quarter sets off a full collection over every connection's state,
# 1.5 s at 10,000 WebSockets (issue 22, docs/benchmarks.md). A larger young generation
# lets those die young: full collections then come only as the connections grow.
YOUNG_GENERATION = 20_000


class YoungGeneration:
    """The process's young-generation threshold while the instance serves."""

    def __init__(self) -> None:
        self._before: tuple[int, int, int] | None = None

    async def start(self) -> None:
        self._before = gc.get_threshold()
        gc.set_threshold(YOUNG_GENERATION, *self._before[1:])

    async def stop(self) -> None:
        if self._before is not None:
            gc.set_threshold(*self._before)
            self._before = None


SERVICE = ServiceApp(
    description="POS API (create orders, poll statuses) and the app's availability API.",
    router=router,
    wire=wire,
    public=True,
)
