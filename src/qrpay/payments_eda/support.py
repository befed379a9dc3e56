"""The support tools' routes (issue 19): the queue's tasks of an order, the retry of a
failed task, the problem payments. Called by ``qrpay support`` only (``allow("support")``).

The queue is read and retried through procrastinate's own tables and API
(``kernel.queue.TaskQueue.jobs``/``retry_failed``), on PostgreSQL as in the embedded
in-memory mode (one process holds that queue, and these routes run in it). Problems are
what is kept somewhere: eda's payments past ``hold_watchdog_seconds`` or being rolled
back (its overdue list, as the sweep reads it), the tasks kept as failed after every try
and those waiting for a retry. What the service only counts and logs (``problem_order``,
``cashback_given_up``) is in the metrics and the log.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases.

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query

from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import PaymentState, RefundState
from qrpay.kernel.callers import allow
from qrpay.kernel.clock import Clock
from qrpay.kernel.errors import QrpayError
from qrpay.kernel.http import error_responses
from qrpay.kernel.queue import JOBS_LIMIT, JobView, TaskQueue
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.service import provide
from qrpay.payments_eda.schemas import (
    TASK_QUEUE,
    OrderIdText,
    ProblemKind,
    SupportProblem,
    SupportProblems,
    SupportTask,
    SupportTasks,
)

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

# The most problems one answer lists.
PROBLEMS_LIMIT = 200


def task_view(job: JobView) -> SupportTask:
    order_id = job.payload.get("order_id")
    return SupportTask(
        job_id=job.id,
        task=job.task,
        status=job.status,
        attempts=job.attempts,
        task_id=job.task_id,
        order_id=None if order_id is None else str(order_id),
        payload=job.payload,
        scheduled_at=job.scheduled_at,
        started_at=job.started_at,
        last_event=job.last_event,
        last_event_at=job.last_event_at,
    )


def _task_problem(kind: ProblemKind, job: JobView) -> SupportProblem:
    task = task_view(job)
    payment = job.payload.get("payment_id")
    return SupportProblem(
        kind=kind,
        order_id=task.order_id,
        payment_id=None if payment is None else str(payment),
        state=job.status,
        at=job.last_event_at,
        task=task,
    )


def _newest_first(problem: SupportProblem) -> tuple[bool, datetime]:
    """Sorted on, in reverse: a payment under way (no time: it is now) first, then by time."""
    return (problem.at is None, problem.at or _EPOCH)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class SupportService:
    runtime: "RuntimeConfig[QrpayConfig]"
    clock: Clock
    queue: TaskQueue
    eda: EdaClient

    async def tasks_of_order(self, order_id: str) -> SupportTasks:
        jobs = await self.queue.jobs(TASK_QUEUE, field=("order_id", order_id))
        return SupportTasks(order_id=order_id, tasks=[task_view(job) for job in jobs])

    async def retry(self, job_id: int) -> SupportTask:
        return task_view(await self.queue.retry_failed(TASK_QUEUE, job_id))

    async def problems(self, limit: int = PROBLEMS_LIMIT) -> SupportProblems:
        found: list[SupportProblem] = []
        unavailable: dict[str, str] = {}
        try:
            found += await self._overdue_payments(limit)
            found += await self._refund_problems(limit)
        except QrpayError as exc:
            unavailable["eda"] = exc.code
        try:
            failed = await self.queue.jobs(TASK_QUEUE, status="failed", limit=limit)
            waiting = await self.queue.jobs(TASK_QUEUE, status="todo", limit=JOBS_LIMIT)
        except QrpayError as exc:
            unavailable["queue"] = exc.code
        else:
            found += [_task_problem(ProblemKind.TASK_FAILED, job) for job in failed]
            found += [
                _task_problem(ProblemKind.TASK_RETRYING, job) for job in waiting if job.attempts > 0
            ]
        found.sort(key=_newest_first, reverse=True)
        return SupportProblems(problems=found[:limit], unavailable=unavailable)

    def _watchdog_cutoff(self) -> datetime:
        """What has not moved since then is overdue (``payments.hold_watchdog_seconds``)."""
        seconds = self.runtime.config.payments.hold_watchdog_seconds
        return self.clock.now() - timedelta(seconds=seconds)

    async def _refund_problems(self, limit: int) -> list[SupportProblem]:
        page = await self.eda.refund_problems(self._watchdog_cutoff(), limit=limit)
        return [
            SupportProblem(
                kind=ProblemKind.REFUND_FAILED
                if item.state is RefundState.FAILED
                else ProblemKind.REFUND_STUCK,
                order_id=item.order_id,
                payment_id=item.payment_id,
                refund_part_id=item.part_id,
                state=item.state.value,
                at=item.updated_at,
            )
            for item in page.refunds
        ]

    async def _overdue_payments(self, limit: int) -> list[SupportProblem]:
        page = await self.eda.payments_to_check(self._watchdog_cutoff(), limit=limit)
        return [
            SupportProblem(
                kind=ProblemKind.PAYMENT_ROLLING_BACK
                if item.state is PaymentState.ROLLING_BACK
                else ProblemKind.PAYMENT_OVERDUE,
                order_id=item.order_id,
                payment_id=item.payment_id,
                state=item.state.value,
                at=None,
            )
            for item in page.payments
        ]


router = APIRouter(prefix="/v1/support", tags=["support"], dependencies=[allow("support")])
Support = Annotated[SupportService, Depends(provide(SupportService))]


@router.get(
    "/tasks",
    summary="The queue's tasks of an order, newest first: status, attempts, last event",
    response_model=SupportTasks,
    responses=error_responses(400, 401, 403, 503),
)
async def tasks_of_order(
    support: Support, order_id: Annotated[OrderIdText, Query()]
) -> SupportTasks:
    return await support.tasks_of_order(order_id)


@router.post(
    "/tasks/{job_id}/retry",
    summary="Run a failed task again now (procrastinate's retry; one more attempt)",
    response_model=SupportTask,
    responses=error_responses(401, 403, 404, 409, 503),
)
async def retry_task(
    support: Support, job_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> SupportTask:
    return await support.retry(job_id)


@router.get(
    "/problems",
    summary="Problem payments and tasks: payments under way too long, tasks failed or"
    " retrying, newest first",
    response_model=SupportProblems,
    responses=error_responses(401, 403),
)
async def problems(
    support: Support, limit: Annotated[int, Query(ge=1, le=PROBLEMS_LIMIT)] = 100
) -> SupportProblems:
    return await support.problems(limit)
