"""payments-eda's composition root: the only place that wires its real adapters.

``SERVICE`` declares the HTTP app; ``build_worker(ctx)`` gives what ``qrpay worker
payments-eda`` needs to run the same queue consumers without it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cashback.client import CashbackClient
from qrpay.eda.client import EdaClient
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import Job, ServiceApp, ServiceContext, Wiring, every, running
from qrpay.payments_eda import support, tasks
from qrpay.payments_eda.api import refunds_router
from qrpay.payments_eda.api import router as payer_router
from qrpay.payments_eda.service import PaymentsMetrics, PaymentsService
from qrpay.transactions.client import TransactionsClient

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

QUEUE_GAUGES_INTERVAL_SECONDS = 5.0


def _service(ctx: ServiceContext[QrpayConfig], queue: TaskQueue) -> PaymentsService:
    def wiring(name: str) -> dict[str, Any]:
        return {"session": ctx.http, "dependency": ctx.dependency(name), "metrics": ctx.metrics}

    return PaymentsService(
        runtime=ctx.runtime,
        clock=ctx.clock,
        queue=queue,
        eda=EdaClient(**wiring("eda")),
        cardstorage=CardstorageClient(**wiring("cardstorage")),
        transactions=TransactionsClient(**wiring("transactions")),
        cashback=CashbackClient(**wiring("cashback")),
        metrics=PaymentsMetrics.of(ctx.metrics),
    )


def _register(queue: TaskQueue, service: PaymentsService, ctx: ServiceContext[QrpayConfig]) -> None:
    if tasks.TRANSACTION_CALLBACK.name in queue.app.tasks:
        return  # the app and a worker built in one process share the consumers
    tasks.register(queue, tasks.Handlers(service), ctx.runtime.config.payments)


def _gauges(ctx: ServiceContext[QrpayConfig], service: PaymentsService) -> Job:
    return Job(
        f"{ctx.name}-queue-gauges",
        lambda: every(QUEUE_GAUGES_INTERVAL_SECONDS, service.refresh_queue_gauges, "queue_gauges"),
    )


def sweep_interval(ctx: ServiceContext[QrpayConfig]) -> float:
    """A sixth of ``hold_watchdog_seconds`` (5 s for 30 s): a stuck payment is looked at
    at most that long after it became overdue."""
    return max(0.5, ctx.runtime.config.payments.hold_watchdog_seconds / 6)


def _sweep(ctx: ServiceContext[QrpayConfig], service: PaymentsService) -> Job:
    return Job(
        f"{ctx.name}-payment-sweep",
        lambda: every(sweep_interval(ctx), service.sweep_stuck_payments, "payment_sweep"),
    )


def wire(ctx: ServiceContext[QrpayConfig]) -> Wiring:
    # A private in-memory queue would lose callbacks on every restart and never see
    # the ones transactions puts elsewhere: refuse to start rather than fail quietly.
    queue = ctx.required_queue()
    service = _service(ctx, queue)
    _register(queue, service, ctx)
    jobs = [_gauges(ctx, service)]
    if ctx.run_background_jobs:
        # Every process that answers guests follows eda's feed for their long-polls.
        jobs.append(Job(service.follower.job_name, service.follower.run))
    if ctx.run_queue_workers:
        jobs.append(
            Job("payments-eda-worker", lambda: queue.run_worker([tasks.QUEUE], name="payments-eda"))
        )
        jobs.append(_sweep(ctx, service))
    # The support tools' reads and retries (issue 19).
    support_service = support.SupportService(
        runtime=ctx.runtime,
        clock=ctx.clock,
        queue=queue,
        eda=EdaClient(session=ctx.http, dependency=ctx.dependency("eda"), metrics=ctx.metrics),
    )
    # Its state is its task queue: not ready while the queue's database does not answer.
    return Wiring(services=[service, support_service], jobs=jobs, ready=queue.ping)


router = APIRouter()
router.include_router(payer_router)
router.include_router(refunds_router)
router.include_router(support.router)

SERVICE = ServiceApp(
    description="The payer API (preorder, pay, payment status), transaction callbacks, refunds"
    " and the support tools' routes.",
    router=router,
    wire=wire,
)


def build_worker(
    ctx: ServiceContext[QrpayConfig],
) -> tuple[list[str], AbstractAsyncContextManager[None]]:
    """The queues to consume and the resources the consumers need, for ``qrpay worker``.

    Usage::

        queues, resources = build_worker(ctx)
        async with resources:
            await ctx.queue.run_worker(queues)

    The handlers are registered on ``ctx.queue`` by this call; ``resources`` is the
    service's lifespan without the HTTP app: config watching, the queue gauges and the
    sweep of stuck payments, and the HTTP clients closed on exit.
    """
    queue = ctx.required_queue()
    service = _service(ctx, queue)
    _register(queue, service, ctx)
    jobs = [_gauges(ctx, service), _sweep(ctx, service)]
    return [tasks.QUEUE], running(ctx, Wiring(jobs=jobs))
