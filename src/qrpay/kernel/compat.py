"""Where qrpay relies on its libraries beyond their documented hooks: all of it, in one place.

Written against procrastinate 3.10, psycopg 3.3, psycopg_pool 3.3 and asyncpg 0.32;
pyproject.toml bounds them to these minor versions. ``tests/component/kernel/test_compat.py``
fails when an upgrade changes anything listed here (``OVERRIDDEN``, ``RELIED_ON``,
``ASYNCPG_CONNECTION_LOST``): read the new upstream code, adapt this module, then record the
new fingerprints (the test prints them).

What needs no override (kernel/queue.py uses the public hooks): the queue's pool is built by
qrpay and handed to ``App.open_async(pool=...)`` so it opens without waiting, and it keeps
reconnecting through psycopg_pool's ``reconnect_timeout``/``reconnect_failed``.

What still does:

- ``ResilientJobManager`` overrides six public methods of procrastinate's ``JobManager``,
  because procrastinate's worker stops (fetch, heartbeat, LISTEN), loses a job's outcome
  (finish, retry) or logs a traceback (abort poll) on the first failed query, and has no
  hook to say otherwise. It is put in
  place by assigning ``App.job_manager`` before any task is registered.
- ``asyncpg_connection_lost`` reads two asyncpg error messages: asyncpg raises a lost or
  mid-way connection as a plain ``InterfaceError``/``InternalClientError``, with no subclass
  or SQLSTATE to tell it from a misuse (SQLAlchemy's asyncpg dialect reads the same text).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import asyncpg
import psycopg
import structlog
from procrastinate import exceptions as pexc
from procrastinate import jobs as pjobs
from procrastinate import manager as pmanager
from procrastinate import worker as pworker

log = structlog.get_logger("qrpay.queue")

# procrastinate's code that ResilientJobManager's overrides depend on, by SHA-256 of the source
# (first 16 hex digits). The overridden methods: their contract must not have moved.
OVERRIDDEN = {
    "JobManager.fetch_job": "eb92906b55c10d9c",
    "JobManager.update_heartbeat": "91a7b7aa717eace4",
    "JobManager.list_jobs_to_abort_async": "6eed18767db5d02d",
    "JobManager.listen_for_jobs": "357ae708778f844e",
    "JobManager.finish_job": "eeb7dbb92f90508d",
    "JobManager.retry_job": "8914e96080e0b618",
}
# Their callers in the worker: if these start handling database failures themselves (or call
# something else), the overrides may be unneeded or miss a path.
RELIED_ON = {
    "Worker._fetch_and_process_jobs": "2963aa354dfda4d6",
    "Worker._update_heartbeat": "a45b4b3b030e0827",
    "Worker._poll_jobs_to_abort": "73ddd46a142855e6",
    "Worker._start_side_tasks": "2623df64cb23ce26",
    "Worker._persist_job_status": "821921c86130d151",
}
SOURCES: dict[str, Callable[..., Any]] = {
    "JobManager.fetch_job": pmanager.JobManager.fetch_job,
    "JobManager.update_heartbeat": pmanager.JobManager.update_heartbeat,
    "JobManager.list_jobs_to_abort_async": pmanager.JobManager.list_jobs_to_abort_async,
    "JobManager.listen_for_jobs": pmanager.JobManager.listen_for_jobs,
    "JobManager.finish_job": pmanager.JobManager.finish_job,
    "JobManager.retry_job": pmanager.JobManager.retry_job,
    "Worker._fetch_and_process_jobs": pworker.Worker._fetch_and_process_jobs,
    "Worker._update_heartbeat": pworker.Worker._update_heartbeat,
    "Worker._poll_jobs_to_abort": pworker.Worker._poll_jobs_to_abort,
    "Worker._start_side_tasks": pworker.Worker._start_side_tasks,
    "Worker._persist_job_status": pworker.Worker._persist_job_status,
}

# asyncpg's wording for "this connection is gone" (connection.py, protocol/protocol.pyx) and
# "the server ended it while a reply was due" (protocol/coreproto.pyx), by exception class.
ASYNCPG_CONNECTION_LOST: tuple[tuple[type[BaseException], str], ...] = (
    (asyncpg.InterfaceError, "connection is closed"),
    (asyncpg.exceptions.InternalClientError, "is in progress"),
)


def asyncpg_connection_lost(exc: BaseException) -> bool:
    """Whether asyncpg raised ``exc`` because its connection is closed or left mid-way."""
    return any(isinstance(exc, kind) and text in str(exc) for kind, text in ASYNCPG_CONNECTION_LOST)


def is_transient(exc: BaseException) -> bool:
    """Whether a queue operation failed because the database could not be reached or used."""
    if isinstance(exc, pexc.UniqueViolation):
        return False
    cause = exc.__cause__ if isinstance(exc, pexc.ConnectorException) else exc
    return isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError, OSError))


def failure_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` of what caused ``exc``, for one-line logs."""
    cause = exc.__cause__ or exc
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"


class ResilientJobManager(pmanager.JobManager):
    """procrastinate's job manager, made to ride out the database going away for a while.

    ``persist_deadline``: how long a job's outcome is retried while the database is away;
    ``listen_max_delay``: the longest pause between two attempts to reopen LISTEN.
    """

    def __init__(self, connector: Any, *, persist_deadline: float, listen_max_delay: float) -> None:
        super().__init__(connector)
        self.persist_deadline = persist_deadline
        self.listen_max_delay = listen_max_delay

    async def fetch_job(self, queues: Iterable[str] | None, worker_id: int) -> pjobs.Job | None:
        try:
            return await super().fetch_job(queues, worker_id)
        except pexc.ConnectorException as exc:
            if not is_transient(exc):
                raise
            # A raise here would stop the worker; "no job" makes it poll again.
            log.warning("queue_fetch_failed", reason=failure_reason(exc))
            return None

    async def update_heartbeat(self, worker_id: int) -> None:
        try:
            await super().update_heartbeat(worker_id)
        except pexc.ConnectorException as exc:
            if not is_transient(exc):
                raise
            log.warning("queue_heartbeat_failed", worker_id=worker_id, reason=failure_reason(exc))

    async def list_jobs_to_abort_async(self, queue: str | None = None) -> Iterable[int]:
        try:
            return await super().list_jobs_to_abort_async(queue)
        except pexc.ConnectorException as exc:
            if not is_transient(exc):
                raise
            # procrastinate would log it with a traceback (a fault-test violation) and poll
            # again: say it in one line.
            log.warning("queue_abort_poll_failed", reason=failure_reason(exc))
            return []

    async def listen_for_jobs(self, **kwargs: Any) -> None:
        # procrastinate's listener gives up (and, through its worker, stops the worker) on
        # the first failed reconnection: keep reconnecting. Polling covers the gap.
        delay = 0.1
        while True:
            started = time.monotonic()
            try:
                await super().listen_for_jobs(**kwargs)
            except pexc.ConnectorException as exc:
                if not is_transient(exc):
                    raise
                if time.monotonic() - started > 10:
                    delay = 0.1  # it had been listening for a while: a new outage
                log.warning("queue_listen_failed", reason=failure_reason(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.listen_max_delay)

    async def finish_job(self, job: pjobs.Job, status: pjobs.Status, delete_job: bool) -> None:
        await self._persist(
            "finish",
            job,
            lambda: super(ResilientJobManager, self).finish_job(job, status, delete_job),
        )

    async def retry_job(
        self,
        job: pjobs.Job,
        retry_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        async def retry() -> None:
            try:
                await super(ResilientJobManager, self).retry_job(
                    job, retry_at=retry_at, priority=priority, queue=queue, lock=lock
                )
            except pexc.UniqueViolation as exc:
                if exc.constraint_name != pmanager.QUEUEING_LOCK_CONSTRAINT:
                    raise
                # The same task (same task id) was queued again while this one ran: that
                # one will do the work (handlers are idempotent). Close this job.
                log.warning(
                    "task_retry_superseded",
                    task=job.task_name,
                    job_id=job.id,
                    task_id=exc.queueing_lock,
                )
                await super(ResilientJobManager, self).finish_job(
                    job, pjobs.Status.SUCCEEDED, delete_job=True
                )

        await self._persist("retry", job, retry)

    async def _persist(
        self, what: str, job: pjobs.Job, write: Callable[[], Awaitable[None]]
    ) -> None:
        """Record a job's outcome, waiting for the database if it is away.

        Without this a job that ends while the database is down stays ``doing`` under a
        worker that is alive and heart-beating, so no one ever recovers it.
        """
        deadline = time.monotonic() + self.persist_deadline
        delay = 0.1
        failed_before = False
        while True:
            try:
                await write()
                if failed_before:
                    log.info("task_outcome_recorded", what=what, task=job.task_name, job_id=job.id)
                return
            except pexc.ConnectorException as exc:
                if not is_transient(exc):
                    if failed_before and isinstance(exc.__cause__, psycopg.errors.RaiseException):
                        # "job not found or in the wrong status": the try before this one
                        # was written and only its answer was lost.
                        return
                    raise
                if time.monotonic() + delay > deadline:
                    log.error("task_outcome_lost", what=what, task=job.task_name, job_id=job.id)
                    raise
                failed_before = True
                log.warning(
                    "task_outcome_waiting",
                    what=what,
                    task=job.task_name,
                    job_id=job.id,
                    reason=failure_reason(exc),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
