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
  (run periodically by every worker) puts it back;
- a succeeded job is deleted as it finishes; cancelled and aborted ones, and failed ones
  much later, are deleted by ``remove_old_jobs`` (periodically, by every worker given a
  ``retention``);
- the support tools read a queue's jobs (``jobs``: by a payload field, e.g. an order's
  tasks, or by status) and retry a failed one (``retry_failed``) through procrastinate's
  own tables and ``retry_job_by_id``, on PostgreSQL and in memory alike;
- the request id current when a task is put (the HTTP request's, or the task's that puts
  it) goes with the job (``REQUEST_ID_ARG`` in its args, never given to the handler) and
  is the current request id while the task runs: in its log lines and its calls to other
  services. One id follows a payment from the pay request through every task after it.

Production keeps jobs in PostgreSQL; the embedded mode keeps them in memory.

The queue's database may go away for a while (a restart, a fail-over) and the
processes must carry on by themselves when it is back:

- a process may start while the database is down: the pool opens without waiting
  and connects when it can;
- ``put`` fails within the pool's wait (``POOL_WAIT_SECONDS``) with
  ``DependencyUnavailable`` (``database_unavailable``: a 503 for the request that
  put the task), never a hang or a 500;
- the pool reconnects at most ``RECONNECT_MAX_DELAY`` after the database is back
  (psycopg_pool's own backoff doubles up to minutes);
- a worker does not stop on it: a failed job fetch counts as "no job", a missed
  heartbeat is skipped, the LISTEN connection is reopened with backoff, and a
  job's outcome (done, retry) is written once the database answers again instead
  of being lost with the job left ``doing`` under a live worker; if the worker
  stops anyway, ``run_worker`` starts a new one;
- a retry that collides with an identical task queued meanwhile (at-least-once
  delivery put the same task id again while this one ran) leaves that one to do
  the work instead of leaving this job ``doing`` for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
import structlog
from procrastinate import exceptions as pexc
from procrastinate import manager as pmanager
from procrastinate.testing import InMemoryConnector

from qrpay.kernel.compat import ResilientJobManager, failure_reason, is_transient
from qrpay.kernel.config import RetentionConfig
from qrpay.kernel.db import libpq_url
from qrpay.kernel.errors import Conflict, DependencyUnavailable, NotFound
from qrpay.kernel.queue_schema import QueueUpgrade, upgrade_queue_schema
from qrpay.kernel.request_context import bound_request_id, current_request_id

log = structlog.get_logger("qrpay.queue")

# psycopg_pool's own default: connections of one process to the queue database
# (config database_pools.queue). The worker's LISTEN is one more, of its own.
QUEUE_POOL_SIZE = 4
# How long a caller waits for a pooled connection before the queue counts as unavailable.
POOL_WAIT_SECONDS = 3.0
# The longest pause between two reconnection attempts of the pool (and of LISTEN).
RECONNECT_MAX_DELAY = 0.5
# How long a worker keeps trying to record a job's outcome while the database is away.
PERSIST_DEADLINE_SECONDS = 120.0
# A worker that stopped by itself is started again after this pause (doubling up to 5 s).
WORKER_RESTART_DELAY = 0.5
# The job argument that carries the request id of whoever put the task; no payload may use
# the name.
REQUEST_ID_ARG = "_request_id"
# The most jobs one read of the support tools lists (``TaskQueue.jobs``).
JOBS_LIMIT = 200


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


def queue_unavailable(exc: BaseException) -> DependencyUnavailable:
    """What a caller gets when the queue's database could not be reached or used."""
    return DependencyUnavailable(
        f"the task queue's database is unavailable: {failure_reason(exc)}",
        code="database_unavailable",
    )


TaskHandler = Callable[[dict[str, Any]], Awaitable[None]]
# A handler that also gets its attempt number (1 on the first run, 2 on the first retry, ...).
AttemptTaskHandler = Callable[[dict[str, Any], int], Awaitable[None]]


async def _keep_reconnecting(pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
    """psycopg_pool's ``reconnect_failed``: it gave a connection up; start growing again."""
    if not pool.closed:
        # ``check`` lets the pool grow back towards its size (one connection at a time).
        await pool.check()


def queue_pool(conninfo: str, size: int = QUEUE_POOL_SIZE) -> psycopg_pool.AsyncConnectionPool[Any]:
    """The queue's pool: never waits more than RECONNECT_MAX_DELAY to reconnect.

    psycopg_pool replaces a broken connection with exponential backoff (1 s, 2 s, 4 s ...):
    a database down for 4 s would leave the pool empty for up to 4 s more after it is back.
    Here an attempt gives up after RECONNECT_MAX_DELAY (``reconnect_timeout``) and the pool
    starts again (``reconnect_failed``): one failed connection attempt per
    RECONNECT_MAX_DELAY while the database is down. Connections that the server closed are
    replaced when they are handed out (``check``).
    """
    return psycopg_pool.AsyncConnectionPool(
        conninfo,
        kwargs={"application_name": "qrpay-queue"},
        min_size=size,
        open=False,
        timeout=POOL_WAIT_SECONDS,
        check=psycopg_pool.AsyncConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_MAX_DELAY,
        reconnect_failed=_keep_reconnecting,
    )


class TaskQueue:
    def __init__(self, url: str | None = None, *, pool_size: int = QUEUE_POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        # On PostgreSQL ``open`` hands procrastinate the queue's own pool (``queue_pool``).
        connector: procrastinate.BaseConnector = (
            InMemoryConnector() if url is None else procrastinate.PsycopgConnector()
        )
        self.app = procrastinate.App(connector=connector)
        if url is not None:
            # Before any task is registered: tasks keep a reference to the job manager.
            self.app.job_manager = ResilientJobManager(
                connector,
                persist_deadline=PERSIST_DEADLINE_SECONDS,
                listen_max_delay=RECONNECT_MAX_DELAY * 4,
            )
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._opened = False
        self._handlers: dict[str, TaskSpec] = {}

    @property
    def in_memory(self) -> bool:
        return self.url is None

    async def open(self) -> None:
        """Open the queue; on PostgreSQL, also while the database is down.

        procrastinate would open its own pool waiting for it to fill, and a pool not full in
        time closes itself for good: a process started while the database is down would
        never reach it. The queue's pool opens without waiting, connects in the background,
        and a caller waits at most POOL_WAIT_SECONDS for a connection.
        """
        if self._opened:
            return
        if self.url is None:
            await self.app.open_async()
        else:
            if self._pool is None:
                self._pool = queue_pool(libpq_url(self.url), self.pool_size)
            await self._pool.open(wait=False)
            await self.app.open_async(pool=self._pool)
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self.app.close_async()
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            self._opened = False

    async def apply_schema(self) -> QueueUpgrade | None:
        """Create or upgrade procrastinate's tables (PostgreSQL; ``kernel.queue_schema``)."""
        if self.url is None:
            return None
        return await upgrade_queue_schema(self.url)

    def register(self, spec: TaskSpec, handler: TaskHandler) -> None:
        """Make ``handler`` the consumer of ``spec``; it gets the payload and must be idempotent."""

        async def run(**payload: Any) -> None:
            with bound_request_id(payload.pop(REQUEST_ID_ARG, None)):
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
            with bound_request_id(payload.pop(REQUEST_ID_ARG, None)):
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
        request_id = current_request_id()
        if request_id is not None:
            payload = {**payload, REQUEST_ID_ARG: request_id}
        try:
            await self.app.configure_task(spec.name, **options).defer_async(**payload)
        except pexc.AlreadyEnqueued:
            return False
        except (pexc.ConnectorException, psycopg.Error) as exc:
            if is_transient(exc):
                raise queue_unavailable(exc) from exc
            raise
        return True

    async def ping(self, *, timeout: float = 2.0) -> None:
        """``SELECT 1`` on the queue's database; any failure is ``database_unavailable``."""
        if self.in_memory:
            return
        try:
            async with asyncio.timeout(timeout):
                await self.open()
                await self.app.connector.execute_query_one_async("SELECT 1 AS one")
        except Exception as exc:
            raise DependencyUnavailable(
                f"the task queue's database is unreachable: {type(exc).__name__}",
                code="database_unavailable",
            ) from exc

    async def run_worker(
        self,
        queues: list[str],
        *,
        concurrency: int = 4,
        name: str = "qrpay",
        retention: Callable[[], RetentionConfig] | None = None,
    ) -> None:
        """Process ``queues`` until cancelled, recovering stalled jobs as it goes (and
        removing old ones, with ``retention``).

        A procrastinate worker that stops by itself (it does when one of its side tasks
        fails, or when the database fails it at start) is replaced by a new one after a
        short pause: only cancelling this coroutine ends it.
        """
        await self.open()
        side_tasks = [asyncio.create_task(self._recover_loop(queues))]
        if retention is not None:
            side_tasks.append(asyncio.create_task(self._retention_loop(retention)))
        delay = WORKER_RESTART_DELAY
        try:
            while True:
                started = time.monotonic()
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
                    reason = "stopped by itself"
                except Exception as exc:
                    reason = failure_reason(exc)
                if time.monotonic() - started > 60:
                    delay = WORKER_RESTART_DELAY
                log.warning("queue_worker_restarting", worker=name, reason=reason, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            for task in side_tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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

    async def remove_old_jobs(self, retention: RetentionConfig) -> None:
        """procrastinate's ``builtin_tasks.remove_old_jobs``, twice: cancelled and aborted
        jobs finished ``finished_jobs_hours`` ago, failed ones ``failed_jobs_days`` ago (with
        their events). Safe on several workers at once."""
        await self.open()
        manager = self.app.job_manager
        await manager.delete_old_jobs(
            nb_hours=math.ceil(retention.finished_jobs_hours),
            include_cancelled=True,
            include_aborted=True,
        )
        await manager.delete_old_jobs(
            nb_hours=math.ceil(retention.failed_jobs_days * 24), include_failed=True
        )

    async def _retention_loop(self, retention: Callable[[], RetentionConfig]) -> None:
        while True:
            try:
                await self.remove_old_jobs(retention())
            except Exception as exc:
                log.warning("queue_retention_failed", reason=repr(exc))
            await asyncio.sleep(retention().interval_seconds)

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

    # -- the support tools' reads and retries (issue 19) ---------------------------------

    async def jobs(
        self,
        queue: str,
        *,
        field: tuple[str, str] | None = None,
        status: str | None = None,
        limit: int = JOBS_LIMIT,
    ) -> list[JobView]:
        """``queue``'s jobs, newest first (at most ``limit``): those whose payload has
        ``field`` (name, value) if given, of ``status`` if given. Succeeded jobs are deleted
        as they finish: what is left is waiting, running, failed, cancelled or aborted."""
        await self.open()
        if self.in_memory:
            connector: Any = self.app.connector
            rows = [
                _memory_job(row, connector.events.get(job_id, []))
                for job_id, row in sorted(connector.jobs.items(), reverse=True)
                if row["queue_name"] == queue
                and (status is None or row["status"] == status)
                and (field is None or str((row["args"] or {}).get(field[0])) == field[1])
            ]
            return rows[:limit]
        found = await self._read_jobs(
            queue=queue,
            field_name=field[0] if field else None,
            field_value=field[1] if field else None,
            status=status,
            limit=limit,
            id=None,
        )
        return [_pg_job(row) for row in found]

    async def _read_jobs(self, **params: Any) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = await self.app.connector.execute_query_all_async(
                JOBS_QUERY, **params
            )
        except (pexc.ConnectorException, psycopg.Error) as exc:
            if is_transient(exc):
                raise queue_unavailable(exc) from exc
            raise
        return rows

    async def job(self, queue: str, job_id: int) -> JobView:
        """One job of ``queue``; NotFound ``task_not_found`` if there is none (deleted when
        it succeeded, or another queue's)."""
        await self.open()
        if self.in_memory:
            connector: Any = self.app.connector
            row = connector.jobs.get(job_id)
            found = [] if row is None else [_memory_job(row, connector.events.get(job_id, []))]
        else:
            rows = await self._read_jobs(
                queue=queue, field_name=None, field_value=None, status=None, limit=1, id=job_id
            )
            found = [_pg_job(row) for row in rows]
        if not found or found[0].queue != queue:
            raise NotFound(f"no task {job_id} in queue {queue}", code=QueueCode.TASK_NOT_FOUND)
        return found[0]

    async def retry_failed(self, queue: str, job_id: int) -> JobView:
        """Put a failed job of ``queue`` back to run now, through procrastinate's
        ``retry_job_by_id`` (it counts one more attempt; a job that fails again is failed
        again). Conflict ``task_not_failed`` for a job waiting, running or finished
        otherwise, ``task_already_queued`` while the same task (task id) waits anew."""
        job = await self.job(queue, job_id)
        if job.status != "failed":
            raise Conflict(
                f"task {job_id} is {job.status}: only a failed task is retried",
                code=QueueCode.TASK_NOT_FAILED,
            )
        if job.task_id is not None:
            waiting = await self.jobs(queue, status="todo")
            if any(other.task_id == job.task_id for other in waiting):
                raise _already_queued(job)
        try:
            await self.app.job_manager.retry_job_by_id_async(job_id, retry_at=datetime.now(UTC))
        except pexc.UniqueViolation as exc:
            if exc.constraint_name != pmanager.QUEUEING_LOCK_CONSTRAINT:
                raise
            raise _already_queued(job) from None
        except pexc.ConnectorException as exc:
            if isinstance(exc.__cause__, psycopg.errors.RaiseException):
                # procrastinate's "not found or in the wrong status": retried meanwhile.
                raise Conflict(
                    f"task {job_id} is no longer failed", code=QueueCode.TASK_NOT_FAILED
                ) from None
            if is_transient(exc):
                raise queue_unavailable(exc) from exc
            raise
        log.warning("failed_task_retried", queue=queue, task=job.task, job_id=job_id)
        return await self.job(queue, job_id)


class QueueCode(StrEnum):
    TASK_NOT_FOUND = "task_not_found"
    TASK_NOT_FAILED = "task_not_failed"
    TASK_ALREADY_QUEUED = "task_already_queued"


@dataclass(frozen=True)
class JobView:
    """One job as procrastinate keeps it, for a person: its payload without the request id.

    procrastinate records no error text: a failure's traceback is in the worker's log
    (``job_id``); ``last_event`` says what happened last (``failed``,
    ``deferred_for_retry``, ``started`` ...) and when."""

    id: int
    queue: str
    task: str
    status: str
    attempts: int
    # The producer's task id (procrastinate's queueing lock).
    task_id: str | None
    payload: dict[str, Any]
    scheduled_at: datetime | None
    started_at: datetime | None
    last_event: str | None
    last_event_at: datetime | None


def _already_queued(job: JobView) -> Conflict:
    return Conflict(
        f"task {job.id}'s task id {job.task_id} is queued again: that copy will run",
        code=QueueCode.TASK_ALREADY_QUEUED,
    )


def _payload(args: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (args or {}).items() if k != REQUEST_ID_ARG}


def _memory_job(row: dict[str, Any], events: list[dict[str, Any]]) -> JobView:
    started = [event["at"] for event in events if event["type"] == "started"]
    # "scheduled" is written with its future time: the last event is the latest written.
    last = next((e for e in reversed(events) if e["type"] != "scheduled"), None)
    return JobView(
        id=row["id"],
        queue=row["queue_name"],
        task=row["task_name"],
        status=row["status"],
        attempts=row["attempts"],
        task_id=row["queueing_lock"],
        payload=_payload(row["args"]),
        scheduled_at=row["scheduled_at"],
        started_at=max(started) if started else None,
        last_event=None if last is None else last["type"],
        last_event_at=None if last is None else last["at"],
    )


def _pg_job(row: dict[str, Any]) -> JobView:
    return JobView(
        id=row["id"],
        queue=row["queue_name"],
        task=row["task_name"],
        status=str(row["status"]),
        attempts=row["attempts"],
        task_id=row["queueing_lock"],
        payload=_payload(row["args"]),
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        last_event=None if row["last_event"] is None else str(row["last_event"]),
        last_event_at=row["last_event_at"],
    )


# procrastinate's tables read directly: its list_jobs query filters on neither a payload
# field nor a limit, and returns no event times. "scheduled" events carry their future
# time, so the last event is the latest of the others.
JOBS_QUERY = """
SELECT j.id, j.queue_name, j.task_name, j.status, j.attempts, j.queueing_lock, j.args,
       j.scheduled_at,
       (SELECT max(e.at) FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'started') AS started_at,
       last.type AS last_event, last.at AS last_event_at
  FROM procrastinate_jobs j
  LEFT JOIN LATERAL (
       SELECT e.type, e.at FROM procrastinate_events e
        WHERE e.job_id = j.id AND e.type <> 'scheduled'
        ORDER BY e.at DESC, e.id DESC LIMIT 1) last ON true
 WHERE j.queue_name = %(queue)s
   AND (%(id)s::bigint IS NULL OR j.id = %(id)s)
   AND (%(status)s::procrastinate_job_status IS NULL OR j.status = %(status)s)
   AND (%(field_name)s::text IS NULL OR j.args ->> %(field_name)s = %(field_value)s)
 ORDER BY j.id DESC
 LIMIT %(limit)s
"""
