"""The durable task queue (the role of Yandex STQ), on procrastinate.

A queue task is a contract between services, like an HTTP route: a
``TaskSpec`` names the task, its queue and its retry policy, and a producer
puts a task by name without importing the consumer. Semantics:

- ``put`` with a ``task_id`` that is already queued is a no-op (procrastinate's
  queueing lock), so producers can re-put after a crash without duplicates;
- an ETA (``eta``); retries with capped, jittered exponential backoff and a
  bounded number of tries; a task out of tries stays in the table as ``failed``
  and is counted;
- a worker that died mid-task leaves its job ``doing``; ``recover_stalled``
  (run periodically by every worker) puts it back.

Production keeps jobs in PostgreSQL; the embedded mode keeps them in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import structlog
from procrastinate import exceptions as pexc
from procrastinate.testing import InMemoryConnector

log = structlog.get_logger("qrpay.queue")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    max_attempts: int = 12
    # Waits between tries double from ``backoff_seconds`` up to ``backoff_cap_seconds``: the
    # cap keeps a task from sleeping long after its dependency came back (uncapped doubling
    # after a 30 s outage can mean another 30 s of waiting).
    backoff_seconds: float = 1.0
    backoff_cap_seconds: float = 10.0


@dataclass(frozen=True, kw_only=True)
class CappedBackoff(procrastinate.BaseRetryStrategy):
    """Retry ``max_attempts`` times, waiting ``min(cap, base * 2**tries)``, 0-25% less at random.

    The jitter spreads the retries of tasks that failed together (in one outage), so the
    recovered dependency does not get all of them in the same instant.
    """

    max_attempts: int
    base: float
    cap: float

    def wait_seconds(self, attempts: int, *, rng: random.Random | None = None) -> float:
        wait = min(self.cap, self.base * 2 ** min(attempts, 30))
        return wait * (1 - 0.25 * (rng or random).random())

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if job.attempts >= self.max_attempts:
            return None
        wait = timedelta(seconds=self.wait_seconds(job.attempts))
        return procrastinate.RetryDecision(retry_at=datetime.now(UTC) + wait)


def retry_strategy(spec: TaskSpec) -> CappedBackoff:
    return CappedBackoff(
        max_attempts=spec.max_attempts, base=spec.backoff_seconds, cap=spec.backoff_cap_seconds
    )


TaskHandler = Callable[[dict[str, Any]], Awaitable[None]]
# A handler that also gets its attempt number (1 on the first run, 2 on the first retry, ...).
AttemptTaskHandler = Callable[[dict[str, Any], int], Awaitable[None]]


def libpq_url(url: str) -> str:
    """procrastinate speaks psycopg: strip SQLAlchemy's driver suffix."""
    return url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgresql+psycopg://", "postgresql://"
    )


class TaskQueue:
    def __init__(self, url: str | None = None) -> None:
        self.url = url
        connector: procrastinate.BaseConnector
        if url is None:
            connector = InMemoryConnector()
        else:
            connector = procrastinate.PsycopgConnector(
                conninfo=libpq_url(url), kwargs={"application_name": "qrpay-queue"}
            )
        self.app = procrastinate.App(connector=connector)
        self._opened = False
        self._handlers: dict[str, TaskSpec] = {}

    @property
    def in_memory(self) -> bool:
        return self.url is None

    async def open(self) -> None:
        if not self._opened:
            await self.app.open_async()
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self.app.close_async()
            self._opened = False

    async def apply_schema(self) -> None:
        """Create procrastinate's tables once (PostgreSQL); a no-op when they exist."""
        if self.in_memory:
            return
        await self.open()
        exists = await self.app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if not exists["present"]:
            await self.app.schema_manager.apply_schema_async()

    def register(self, spec: TaskSpec, handler: TaskHandler) -> None:
        """Make ``handler`` the consumer of ``spec``; it gets the payload and must be idempotent."""

        async def run(**payload: Any) -> None:
            await handler(payload)

        self.app.task(
            name=spec.name,
            queue=spec.queue,
            retry=retry_strategy(spec),
        )(run)
        self._handlers[spec.name] = spec

    def register_with_attempt(self, spec: TaskSpec, handler: AttemptTaskHandler) -> None:
        """Like ``register``, but ``handler(payload, attempt)`` also learns which try this is."""

        async def run(context: procrastinate.JobContext, **payload: Any) -> None:
            # procrastinate counts the tries made before this one.
            await handler(payload, context.job.attempts + 1)

        self.app.task(
            name=spec.name,
            queue=spec.queue,
            pass_context=True,
            retry=retry_strategy(spec),
        )(run)
        self._handlers[spec.name] = spec

    async def put(
        self,
        spec: TaskSpec,
        *,
        task_id: str,
        payload: dict[str, Any],
        eta: datetime | None = None,
    ) -> bool:
        """Queue a task; False when a task with this id is already waiting (nothing is added)."""
        await self.open()
        options: dict[str, Any] = {"queue": spec.queue, "queueing_lock": task_id}
        if eta is not None:
            options["schedule_at"] = eta
        try:
            await self.app.configure_task(spec.name, **options).defer_async(**payload)
        except pexc.AlreadyEnqueued:
            return False
        return True

    async def run_worker(
        self, queues: list[str], *, concurrency: int = 4, name: str = "qrpay"
    ) -> None:
        """Process ``queues`` until cancelled, recovering stalled jobs as it goes."""
        await self.open()
        recover = asyncio.create_task(self._recover_loop(queues))
        try:
            await self.app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                name=name,
                wait=True,
                install_signal_handlers=False,
                fetch_job_polling_interval=0.5 if not self.in_memory else 0.05,
                listen_notify=not self.in_memory,
                update_heartbeat_interval=2,
                stalled_worker_timeout=10,
                shutdown_graceful_timeout=20,
                delete_jobs="successful",
            )
        finally:
            recover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recover

    async def recover_stalled(self, queues: list[str], seconds_since_heartbeat: float = 10) -> int:
        recovered = 0
        for queue in queues:
            jobs = await self.app.job_manager.get_stalled_jobs(
                queue=queue, seconds_since_heartbeat=seconds_since_heartbeat
            )
            for job in jobs:
                with contextlib.suppress(Exception):
                    await self.app.job_manager.retry_job(job)
                    recovered += 1
                    log.warning(
                        "stalled_task_recovered", queue=queue, task=job.task_name, job_id=job.id
                    )
        return recovered

    async def _recover_loop(self, queues: list[str]) -> None:
        while True:
            await asyncio.sleep(5)
            try:
                await self.recover_stalled(queues)
            except Exception as exc:
                log.warning("stalled_recovery_failed", reason=repr(exc))

    async def counts(self, queue: str | None = None) -> dict[str, dict[str, int]]:
        """Jobs per queue and status: todo (depth), doing, failed, succeeded, cancelled."""
        await self.open()
        result: dict[str, dict[str, int]] = {}
        for row in await self.app.job_manager.list_queues_async(queue=queue):
            result[row["name"]] = {
                status: int(row.get(status, 0) or 0)
                for status in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")
            }
        return result
