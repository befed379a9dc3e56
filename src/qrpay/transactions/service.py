"""transactions' use cases: invoices, operations, and the processing of operations.

Every operation runs the same pipeline: the API validates and records it as
pending (the domain decides under the invoice's lock); a processor takes a
lease on it, calls the gateway with the key ``<invoice_id>:<operation_id>``
and records the result; the relay then puts the owner's callback task and
marks it sent (the outbox). A result is always committed before its callback
is put, and no task is put inside a transaction that may roll back.

A call without a definite answer (no answer, a timeout, the gateway's own error)
leaves the outcome UNKNOWN: the money may have moved. The operation stays pending,
never failed: the lease is released with a capped backoff (2**attempt seconds, at
most ``gateway.retry_cap_seconds``) and every later try first asks the gateway for
the result of its idempotency key (``lookup``), calling again only when the gateway
never saw it. Past ``gateway.unknown_alert_attempts`` tries it is counted as an
alert. A processor that died mid-call leaves its lease to expire (``LEASE``); the
next try reconciles the same way.

A clear the gateway refuses (a definite answer) is tried again, up to
``gateway.clear_attempts`` tries in all, after the same capped backoff and under a new key
(``<invoice_id>:<operation_id>:<n>``, ``OperationRecord.idempotency_key``): a new key only
after a refusal, never after an unknown outcome, so at most one of its keys can clear.
It stays pending meanwhile (the hold stays settling) and gets no callback; only the last
refusal is recorded failed and reported.

A hold can be voided (``void_hold``): one that never arrived is recorded canceled
(its late request then gets that record back), one not yet sent is canceled, one
that succeeded is released; one at the gateway without an answer is never guessed.

A refund gives back money of a hold whose clear succeeded. It is admitted under the
invoice's lock like every operation (the domain: refunds succeeded and pending never add
up to more than was cleared), then runs the same pipeline: lease, gateway call under its
key (the hold's gateway reference names the payment), lookup after an unknown outcome,
the owner's callback. A refusal is final (``failed`` with the gateway's reason), counted
by outcome with the money given back (``qrpay_transactions_refunds``,
``qrpay_transactions_refunded_minor_units``).

A hold started with ``capture`` is cleared in the same pass: its success and its clear
(``<hold>.clear``) are recorded in one transaction under the invoice's lock, and the owner
gets one callback, the clear's. From that commit on the hold is settling, so a void
answers ``hold_clearing``: the void and the capture exclude each other there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from qrpay.kernel.clock import Clock
from qrpay.kernel.db import Database
from qrpay.kernel.errors import Conflict, DependencyUnavailable, NotFound, QrpayError
from qrpay.kernel.money import minor_units
from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.kernel.tickets import Caller
from qrpay.transactions.config import TransactionsConfig
from qrpay.transactions.domain import (
    CLEAR,
    HOLD,
    REFUND,
    SUCCEEDED,
    InvoiceRecord,
    OperationRecord,
    auto_release_request,
    backoff_seconds,
    capture_clear,
    decide,
    hold_expired,
    is_live_hold,
    plan_void,
    retries_refusal,
)
from qrpay.transactions.gateway import GatewayResult, GatewayUnavailable, PaymentGateway
from qrpay.transactions.metrics import TransactionsMetrics
from qrpay.transactions.repository import SupportReads, TransactionsRepository
from qrpay.transactions.schemas import (
    InvoiceIn,
    OperationIn,
    TransactionCallback,
    TransactionsCode,
    VoidIn,
    VoidOutcome,
    VoidResult,
)

log = structlog.get_logger("qrpay.transactions")

# How long a processor owns a pending operation before another may retry it.
LEASE = timedelta(seconds=60)
# How long a processor keeps trying to record a result while the database is away (well
# inside LEASE, so no other processor has taken the operation over meanwhile, as a rule).
RECORD_RETRY_SECONDS = 30.0
BATCH = 100


@dataclass(frozen=True)
class RelayReport:
    released: int
    processed: int
    callbacks: int


def _invoice_not_found(invoice_id: str) -> NotFound:
    return NotFound(
        f"invoice {invoice_id[:64]!r} not found", code=TransactionsCode.INVOICE_NOT_FOUND
    )


def callback_task_id(op: OperationRecord) -> str:
    return f"{op.invoice_id}:{op.operation_id}:{op.status.value}"


def callback_payload(invoice: InvoiceRecord, op: OperationRecord) -> TransactionCallback:
    return TransactionCallback(
        invoice_id=invoice.invoice_id,
        order_id=invoice.order_id,
        user_id=invoice.user_id,
        operation_id=op.operation_id,
        kind=op.kind,
        status=op.status,
        amount=op.amount_text,
        currency=op.currency,
        target=op.target,
        reason=op.reason,
    )


class TransactionsService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: TransactionsMetrics,
        gateway: PaymentGateway,
        queue: TaskQueue,
        config: Callable[[], TransactionsConfig],
        *,
        process_inline: bool,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.gateway = gateway
        self.queue = queue
        self.config = config
        # Process a new operation right away in this process (besides the relay).
        self.process_inline = process_inline
        self._tasks: set[asyncio.Task[None]] = set()

    # -- invoices

    async def ensure_invoice(
        self, invoice_id: str, body: InvoiceIn, caller: Caller
    ) -> tuple[InvoiceRecord, list[OperationRecord]]:
        async with self.db.write() as session:
            return await self._ensure_invoice(
                TransactionsRepository(session), invoice_id, body, caller
            )

    async def _ensure_invoice(
        self, repo: TransactionsRepository, invoice_id: str, body: InvoiceIn, caller: Caller
    ) -> tuple[InvoiceRecord, list[OperationRecord]]:
        """The invoice (created if absent), locked, with its operations."""
        # A service creates invoices for itself only: the owner hears of their operations.
        caller.require(body.owner, f"invoice {invoice_id!r}")
        fresh = InvoiceRecord(
            invoice_id=invoice_id,
            owner=body.owner,
            order_id=body.order_id,
            user_id=body.user_id,
            currency=body.currency,
            callback_queue=body.callback.queue,
            callback_task=body.callback.task,
            created_at=self.clock.now(),
        )
        if await repo.insert_invoice_if_absent(fresh):
            # PostgreSQL: the new row is ours until commit; nobody else can lock it first.
            return fresh, []
        existing = await repo.get_invoice(invoice_id, for_update=True)
        if existing is None:  # pragma: no cover - invoices are never deleted
            raise _invoice_not_found(invoice_id)
        if not existing.matches(body):
            raise Conflict(
                f"invoice {invoice_id!r} exists with other parameters",
                code=TransactionsCode.INVOICE_MISMATCH,
            )
        ops = await repo.operations_of(invoice_id)
        if existing.user_id != body.user_id:
            # Another guest pays after a failed attempt; never while a hold is live.
            if any(is_live_hold(op, ops) for op in ops):
                raise Conflict("another guest's hold is live", code=TransactionsCode.HOLD_ACTIVE)
            await repo.set_invoice_user(invoice_id, body.user_id)
            existing = replace(existing, user_id=body.user_id)
        return existing, ops

    async def get_invoice(
        self, invoice_id: str, caller: Caller
    ) -> tuple[InvoiceRecord, list[OperationRecord]]:
        async with self.db.read() as session:
            repo = TransactionsRepository(session)
            invoice = await repo.get_invoice(invoice_id)
            if invoice is None:
                raise _invoice_not_found(invoice_id)
            caller.require(invoice.owner, f"invoice {invoice_id!r}")
            return invoice, await repo.operations_of(invoice_id)

    # -- operations

    async def start_operation(
        self, invoice_id: str, request: OperationIn, caller: Caller
    ) -> tuple[OperationRecord, bool]:
        """Record the operation as pending (or return the one with this id); True if new."""
        async with self.db.write() as session:
            repo = TransactionsRepository(session)
            # The invoice's lock serializes every decision about its operations.
            if request.invoice is not None:
                invoice, ops = await self._ensure_invoice(repo, invoice_id, request.invoice, caller)
            else:
                found = await repo.get_invoice(invoice_id, for_update=True)
                if found is None:
                    raise _invoice_not_found(invoice_id)
                caller.require(found.owner, f"invoice {invoice_id!r}")
                invoice, ops = found, await repo.operations_of(invoice_id)
            now = self.clock.now()
            op, created = decide(invoice, ops, request, now)
            if created:
                op, lease = self._claim_at_insert(op, now)
                await repo.insert_operation(op, position=len(ops), claimed_until=lease)
        # Committed: only now may anything act on it.
        if created:
            self.metrics.operations.labels(op.kind.value, op.status.value).inc()
            self._run_claimed(invoice, op)
        return op, created

    def _claim_at_insert(
        self, op: OperationRecord, now: datetime
    ) -> tuple[OperationRecord, datetime | None]:
        """Processing inline, this process takes the operation as it records it (one
        transaction less than claiming it after); another processor takes it over only
        once the lease expires, and then asks the gateway before calling it again."""
        if not self.process_inline:
            return op, None
        return replace(op, attempts=1), now + LEASE

    def _run_claimed(self, invoice: InvoiceRecord, op: OperationRecord) -> None:
        """Execute an operation claimed at insert and deliver its callback, in the background."""
        if not self.process_inline:
            return
        self._spawn(self._process_claimed(invoice, op))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="transactions-process")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process_claimed(self, invoice: InvoiceRecord, op: OperationRecord) -> None:
        try:
            done = await self._execute(op, invoice)
            if done is not None and done.callback_sent_at is None:
                await self._deliver(invoice, done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The relay picks it up: the operation is pending or its callback unsent.
            log.warning("inline_processing_failed", invoice_id=op.invoice_id, error=repr(exc))

    def kick(self, op: OperationRecord) -> None:
        """Process a committed pending operation now, in the background of this process."""
        if not self.process_inline:
            return
        self._spawn(self._process_now(op.invoice_id, op.operation_id))

    async def _process_now(self, invoice_id: str, operation_id: str) -> None:
        key = (invoice_id, operation_id)
        try:
            await self.process_pending(only=key)
            await self.deliver_callbacks(only=key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The relay picks it up: the operation is pending or its callback unsent.
            log.warning("inline_processing_failed", invoice_id=invoice_id, error=repr(exc))

    # -- processing (the relay's steps, each safe to run on every instance at once)

    async def process_pending(self, *, only: tuple[str, str] | None = None) -> int:
        """Claim pending operations and execute them; returns how many got a result."""
        async with self.db.write() as session:
            claimed = await TransactionsRepository(session).claim_pending(
                self.clock.now(), LEASE, limit=BATCH, only=only
            )
        if not claimed:
            return 0
        done = await asyncio.gather(*(self.execute(op) for op in claimed))
        return sum(done)

    async def _call_gateway(self, op: OperationRecord) -> GatewayResult:
        token = op.token or ""
        key = op.idempotency_key
        timeout = self.config().gateway.call_timeout_seconds
        if op.attempts > 1:
            # An earlier try may have been carried out without its answer reaching us.
            known = await asyncio.wait_for(self.gateway.lookup(key), timeout)
            if known is not None:
                return known
        if op.kind == HOLD:
            call = self.gateway.hold(token, op.amount, op.currency, key)
        elif op.kind == CLEAR:
            call = self.gateway.clear(token, op.amount, op.currency, key, op.reference)
        elif op.kind == REFUND:
            call = self.gateway.refund(token, op.amount, op.currency, key, op.reference)
        else:
            call = self.gateway.unhold(token, op.amount, op.currency, key, op.reference)
        return await asyncio.wait_for(call, timeout)

    async def execute(self, op: OperationRecord) -> bool:
        """Run one claimed operation through the gateway; True when its result was recorded."""
        return await self._execute(op) is not None

    async def _execute(
        self, op: OperationRecord, invoice: InvoiceRecord | None = None
    ) -> OperationRecord | None:
        """The operation as recorded with its result; None when it got none (or had one)."""
        try:
            result = await self._call_gateway(op)
        except (GatewayUnavailable, TimeoutError) as exc:
            await self._outcome_unknown(op, exc)
            return None
        if retries_refusal(op, result.status, self.config().gateway.clear_attempts):
            await self._refused_for_now(op, result)
            return None
        recorded = await self._record(op, result, invoice)
        if recorded is not None:
            self.metrics.operations.labels(op.kind.value, result.status.value).inc()
            if op.kind == REFUND:
                self._count_refund(recorded)
            log.info(
                "operation_finished",
                invoice_id=op.invoice_id,
                operation_id=op.operation_id,
                kind=op.kind.value,
                status=result.status.value,
                reason=result.reason,
            )
        return recorded

    def _count_refund(self, refund: OperationRecord) -> None:
        """A refund's outcome, counted once (by the processor that recorded it); a refusal is
        final, so it is counted and logged as a warning, never dropped."""
        self.metrics.refunds.labels(refund.status.value).inc()
        if refund.status == SUCCEEDED:
            minor = refund.amount.scaleb(minor_units(refund.currency))
            self.metrics.refunded_minor_units.labels(refund.currency).inc(int(minor))
        else:
            log.warning(
                "refund_failed",
                invoice_id=refund.invoice_id,
                operation_id=refund.operation_id,
                hold_id=refund.target,
                amount=refund.amount_text,
                reason=refund.reason,
            )

    async def _outcome_unknown(self, op: OperationRecord, exc: BaseException) -> None:
        """No definite answer: the operation stays pending and is tried again later."""
        gateway = self.config().gateway
        retry_in = backoff_seconds(op.attempts, gateway.retry_cap_seconds)
        op_log = log.bind(
            invoice_id=op.invoice_id, operation_id=op.operation_id, kind=op.kind.value
        )
        op_log.warning(
            "gateway_outcome_unknown", attempt=op.attempts, retry_in=retry_in, error=repr(exc)
        )
        if op.attempts == gateway.unknown_alert_attempts:
            self.metrics.unknown_outcomes.labels(op.kind.value).inc()
            op_log.error("operation_outcome_unknown_for_long", attempts=op.attempts)
        async with self.db.write() as session:
            await TransactionsRepository(session).release_claim(
                op, self.clock.now() + timedelta(seconds=retry_in)
            )

    async def _refused_for_now(self, op: OperationRecord, result: GatewayResult) -> None:
        """A refusal with tries left: the clear stays pending and is tried under a new key."""
        refusals = op.refusals + 1
        retry_in = backoff_seconds(refusals, self.config().gateway.retry_cap_seconds)
        async with self.db.write() as session:
            counted = await TransactionsRepository(session).record_refusal(
                op, self.clock.now() + timedelta(seconds=retry_in)
            )
        if not counted:
            return  # finished, or its refusal counted by a processor that took it over
        self.metrics.clear_retries.inc()
        log.warning(
            "clear_refused_retrying",
            invoice_id=op.invoice_id,
            operation_id=op.operation_id,
            refusals=refusals,
            reason=result.reason,
            retry_in=retry_in,
        )

    async def _record(
        self, op: OperationRecord, result: GatewayResult, invoice: InvoiceRecord | None = None
    ) -> OperationRecord | None:
        """Write the gateway's result, waiting (within the lease) for a database that is away.

        The money has moved at the gateway: giving up at once would leave the operation
        pending until its lease expires (``LEASE``) and the owner without its callback for
        that long. Recording is conditional on the operation being pending, so a try whose
        answer was lost, or another processor that took over, cannot record it twice.
        """
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        delay = 0.1
        while True:
            try:
                if op.capture and result.status == SUCCEEDED:
                    return await self._record_captured(op, result)
                now = self.clock.now()
                # One conditional statement: atomic on its own.
                async with self.db.write_one() as session:
                    if not await TransactionsRepository(session).record_result(op, result, now):
                        return None
                return replace(
                    op,
                    status=result.status,
                    reason=result.reason,
                    reference=result.reference or op.reference,
                    finished_at=now,
                )
            except DependencyUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "result_not_recorded_yet",
                    invoice_id=op.invoice_id,
                    operation_id=op.operation_id,
                    retry_in=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _record_captured(
        self, hold: OperationRecord, result: GatewayResult
    ) -> OperationRecord | None:
        """A captured hold's success and its clear, in one transaction under the invoice's lock.

        The hold's own callback is marked sent in the same statement: the owner hears of the
        clear.
        """
        now = self.clock.now()
        async with self.db.write() as session:
            repo = TransactionsRepository(session)
            invoice = await repo.get_invoice(hold.invoice_id, for_update=True)
            if invoice is None or not await repo.record_result(hold, result, now, reported=True):
                return None
            done = replace(
                hold,
                status=SUCCEEDED,
                reference=result.reference or hold.reference,
                finished_at=now,
                callback_sent_at=now,
            )
            clear = capture_clear(done, now)
            assert clear is not None
            clear, lease = self._claim_at_insert(clear, now)
            ops = await repo.operations_of(hold.invoice_id)
            await repo.insert_operation(clear, position=len(ops), claimed_until=lease)
        self.metrics.operations.labels(clear.kind.value, clear.status.value).inc()
        self._run_claimed(invoice, clear)
        return done

    async def deliver_callbacks(self, *, only: tuple[str, str] | None = None) -> int:
        """The outbox: put a callback task for every finished operation not yet reported.

        The task id names the result, so a relay that runs twice (or on two
        instances) while the task waits in the queue adds it once.
        """
        async with self.db.read() as session:
            pending = await TransactionsRepository(session).undelivered(limit=BATCH, only=only)
        sent = 0
        for invoice, op in pending:
            sent += await self._deliver(invoice, op)
        return sent

    async def _deliver(self, invoice: InvoiceRecord, op: OperationRecord) -> bool:
        """Put the finished operation's callback task, then mark it sent; True if this did."""
        await self.queue.put(
            TaskSpec(name=invoice.callback_task, queue=invoice.callback_queue),
            task_id=callback_task_id(op),
            payload=callback_payload(invoice, op).model_dump(mode="json"),
        )
        async with self.db.write_one() as session:
            marked = await TransactionsRepository(session).mark_callback_sent(op, self.clock.now())
        if marked:
            self.metrics.callbacks_sent.inc()
        return marked

    async def void_hold(
        self, invoice_id: str, hold_id: str, body: VoidIn, caller: Caller
    ) -> VoidResult:
        """Make sure the hold never leaves money taken; safe to repeat until the outcome is final."""
        now = self.clock.now()
        release: OperationRecord | None = None
        async with self.db.write() as session:
            repo = TransactionsRepository(session)
            invoice = await repo.get_invoice(invoice_id, for_update=True)
            if invoice is None:
                raise _invoice_not_found(invoice_id)
            caller.require(invoice.owner, f"invoice {invoice_id!r}")
            ops = await repo.operations_of(invoice_id)
            plan = plan_void(invoice, ops, hold_id, body.release_operation_id, now)
            outcome = plan.outcome
            if plan.tombstone is not None:
                await repo.insert_operation(plan.tombstone, position=len(ops))
            if plan.cancel_pending is not None and not await repo.cancel_unsent(
                plan.cancel_pending, now
            ):
                outcome = VoidOutcome.IN_FLIGHT  # a processor took it to the gateway meanwhile
            if plan.release is not None:
                release, created = decide(invoice, ops, plan.release, now)
                if created:
                    await repo.insert_operation(release, position=len(ops))
                else:
                    release = None
        if release is not None:
            self.metrics.operations.labels(release.kind.value, release.status.value).inc()
            self.kick(release)
        log.info("hold_voided", invoice_id=invoice_id, hold_id=hold_id, outcome=outcome.value)
        return VoidResult(operation_id=hold_id, outcome=outcome)

    async def release_expired_holds(self) -> int:
        """Start an unhold (``auto-release:<hold id>``) of every hold left past its TTL."""
        ttl = self.config().hold_ttl_seconds
        now = self.clock.now()
        async with self.db.read() as session:
            candidates = await TransactionsRepository(session).expired_hold_candidates(
                now - timedelta(seconds=ttl), limit=BATCH
            )
        started = 0
        for invoice_id, hold_id in candidates:
            created = False
            async with self.db.write() as session:
                repo = TransactionsRepository(session)
                invoice = await repo.get_invoice(invoice_id, for_update=True)
                if invoice is None:  # pragma: no cover - invoices are never deleted
                    continue
                ops = await repo.operations_of(invoice_id)
                hold = next((o for o in ops if o.operation_id == hold_id), None)
                if hold is None or not hold_expired(hold, ops, now, ttl):
                    continue
                try:
                    op, created = decide(invoice, ops, auto_release_request(hold), now)
                except QrpayError as exc:  # pragma: no cover - hold_expired checked the same
                    log.warning("auto_release_refused", invoice_id=invoice_id, error=repr(exc))
                    continue
                if created:
                    await repo.insert_operation(op, position=len(ops))
            if created:
                started += 1
                self.metrics.operations.labels(op.kind.value, op.status.value).inc()
                log.info("hold_auto_release_started", invoice_id=invoice_id, hold_id=hold_id)
        return started

    async def refresh_pending_gauge(self) -> None:
        async with self.db.read() as session:
            count = await TransactionsRepository(session).count_pending()
        self.metrics.pending_operations.set(count)

    async def relay_once(self) -> RelayReport:
        released = await self.release_expired_holds()
        processed = await self.process_pending()
        callbacks = await self.deliver_callbacks()
        await self.refresh_pending_gauge()
        return RelayReport(released=released, processed=processed, callbacks=callbacks)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the support tools' reads (issue 19)

    async def invoices_of_order(
        self, order_id: str
    ) -> list[tuple[InvoiceRecord, list[OperationRecord]]]:
        """The order's invoices (any owner's) with their operations, oldest first."""
        async with self.db.read() as session:
            return await SupportReads(session).invoices_of_order(order_id)
