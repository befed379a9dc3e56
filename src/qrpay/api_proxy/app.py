"""The composition root of api-proxy: the only place its real adapters are wired."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.staticfiles import StaticFiles

from qrpay.api_proxy.api import router
from qrpay.api_proxy.client import PaymentsEdaForwarder
from qrpay.api_proxy.pages import STATIC_DIR
from qrpay.api_proxy.service import ApiProxyService, ProxyLimits
from qrpay.iiko_integration.client import IikoIntegrationClient
from qrpay.kernel.config import LimitName
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.service import ServiceApp, ServiceContext, Wiring

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    # One aiohttp session (ctx.http) for every downstream, and one apart for the guests'
    # status long-polls: each holds a connection while it waits, so they get a pool of
    # their own, unbounded there, and a bulkhead of payments.max_waiting.
    long_polls = HttpSession(limit=0, ticket=ctx.http.ticket)
    service = ApiProxyService(
        runtime=ctx.runtime,
        clock=ctx.clock,
        payments=PaymentsEdaForwarder(
            session=ctx.http, dependency=ctx.dependency("payments-eda"), metrics=ctx.metrics
        ),
        waits=PaymentsEdaForwarder(
            session=long_polls,
            dependency=ctx.dependency("payments-eda"),
            metrics=ctx.metrics,
            max_in_flight=lambda: ctx.runtime.config.payments.max_waiting,
        ),
        iiko=IikoIntegrationClient(
            session=ctx.http, dependency=ctx.dependency("iiko-integration"), metrics=ctx.metrics
        ),
        limits=ProxyLimits(
            sign_in=ctx.rate_limiter(LimitName.SIGN_IN),
            pay=ctx.rate_limiter(LimitName.PAY),
            client_address=ctx.rate_limiter(LimitName.CLIENT_ADDRESS),
        ),
    )
    return Wiring(services=[service], on_stop=[long_polls.close])


SERVICE = ServiceApp(
    description=(
        "The guest's entry: development sign-in, payments-eda's payer API and "
        "iiko-integration's app API with the user's headers, and the payer web page."
    ),
    router=router,
    wire=wire,
    mounts=[("/go-pay/static", "static", lambda: StaticFiles(directory=STATIC_DIR))],
    public=True,
)
