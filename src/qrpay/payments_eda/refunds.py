"""Refunds of payments (issue 19): eda decides and reserves, transactions moves the money,
cashback takes back its share. The saga keeps no state of its own: eda's refund parts are
the record, and every step is idempotent on the part's id, so a repeated request, a retried
task or a lost answer never refunds twice (docs/refunds.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import structlog

from qrpay.cashback.client import CashbackClient
from qrpay.cashback.schemas import ReversalIn
from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import RefundPartView, RefundState
from qrpay.eda.schemas import RefundRequest as EdaRefundRequest
from qrpay.kernel.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    QrpayError,
)
from qrpay.kernel.http_client import NotSent
from qrpay.kernel.money import format_amount, minor_units, parse_amount, round_down
from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.payments_eda.domain import accrual_key
from qrpay.payments_eda.schemas import (
    TASK_QUEUE,
    RefundCode,
    RefundPart,
    RefundRequest,
    RefundStatus,
    RefundView,
    Task,
)
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.schemas import (
    OperationIn,
    OperationKind,
    OperationStatus,
    TransactionCallback,
    TransactionsCode,
)

log = structlog.get_logger("qrpay.payments_eda.refunds")

# transactions' definite refusals of a refund: the money was never asked for, so the part
# is given back in eda (anything else is an unknown outcome, never read as a failure).
_REFUSED_BY_TRANSACTIONS = frozenset(
    {TransactionsCode.REFUND_EXCEEDS_CLEARED, TransactionsCode.NOTHING_TO_REFUND}
)


def refund_request_hash(request: RefundRequest) -> str:
    """What a refund asked for: a repeat of its id must ask for the same."""
    body = {
        # "100" and "100.00" are one amount.
        "amount": format(Decimal(request.amount).normalize(), "f"),
        "tip": format(Decimal(request.tip).normalize(), "f"),
        "payment_id": request.payment_id,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def reversal_of(accrued: Decimal, refunded: Decimal, paid: Decimal, currency: str) -> Decimal:
    """The cashback a refund of ``refunded`` out of a payment of ``paid`` takes back: its
    proportion of what the payment accrued, rounded down to the currency's minor unit (a
    part's rounding stays with the guest; a whole refund takes back all)."""
    if paid <= 0 or accrued <= 0 or refunded <= 0:
        return Decimal(0)
    if refunded >= paid:
        return accrued
    return round_down(accrued * refunded / paid, minor_units(currency))


def refund_status(parts: list[RefundPartView]) -> RefundStatus:
    states = {p.state for p in parts}
    if states == {RefundState.REFUNDED}:
        return RefundStatus.REFUNDED
    if RefundState.REFUNDING in states:
        return RefundStatus.REFUNDING
    if states == {RefundState.FAILED}:
        return RefundStatus.FAILED
    return RefundStatus.PARTLY_FAILED


def refund_view(
    order_id: str, refund_id: str, currency: str, parts: list[RefundPartView]
) -> RefundView:
    def total(values: list[str]) -> str:
        return format_amount(sum((parse_amount(v, currency) for v in values), Decimal(0)), currency)

    return RefundView(
        order_id=order_id,
        refund_id=refund_id,
        status=refund_status(parts),
        currency=currency,
        amount=total([p.amount for p in parts]),
        tip=total([p.tip for p in parts]),
        parts=[
            RefundPart(
                part_id=p.part_id,
                payment_id=p.payment_id,
                amount=p.amount,
                tip=p.tip,
                state=p.state,
            )
            for p in parts
        ],
    )


@dataclass(frozen=True)
class RefundMetrics:
    refunds: Any  # Counter(outcome)
    refunded: Any  # Counter(currency)
    problems: Any  # Counter(reason)


@dataclass(frozen=True, kw_only=True)
class Refunds:
    queue: TaskQueue
    eda: EdaClient
    transactions: TransactionsClient
    cashback: CashbackClient
    metrics: RefundMetrics

    async def refund(self, request: RefundRequest) -> RefundView:
        """Carry the refund out now, with a durable task behind it that finishes what this
        call could not (a lost answer, a dependency down): put first, so a refund eda has
        admitted is always sent to transactions in the end. The answer is where the parts
        stand; their outcomes come by transactions' callbacks."""
        await self.queue.put(
            TaskSpec(Task.SEND_REFUND.value, queue=TASK_QUEUE),
            task_id=f"refund:{request.order_id}:{request.refund_id}",
            payload=request.model_dump(mode="json"),
        )
        return await self.carry_out(request, unknown_outcome_raises=False)

    async def send_refund_task(self, payload: dict[str, Any]) -> None:
        """The task behind a refund: done once every part is at transactions (or settled);
        an unknown outcome raises, so the queue tries again. A refusal is final."""
        request = RefundRequest.model_validate(payload)
        try:
            await self.carry_out(request, unknown_outcome_raises=True)
        except (Conflict, InvalidInput, NotFound) as exc:
            log.warning("refund_refused", order_id=request.order_id, code=exc.code)

    async def carry_out(
        self, request: RefundRequest, *, unknown_outcome_raises: bool
    ) -> RefundView:
        """Reserve the refund's parts in eda (or find them: a repeat), then ask transactions
        for each part still refunding."""
        started = await self.eda.refund(
            request.order_id,
            EdaRefundRequest(
                refund_id=request.refund_id,
                amount=request.amount,
                tip=request.tip,
                payment_id=request.payment_id,
                request_hash=refund_request_hash(request),
            ),
        )
        log.info(
            "refund_started",
            order_id=request.order_id,
            refund_id=request.refund_id,
            source=request.source,
            replayed=started.replayed,
            parts=len(started.parts),
        )
        parts = list(started.parts)
        for i, part in enumerate(parts):
            if part.state is RefundState.REFUNDING:
                parts[i] = await self._send(
                    request.order_id, part, started.currency, unknown_outcome_raises
                )
        return refund_view(request.order_id, request.refund_id, started.currency, parts)

    async def view(self, order_id: str, refund_id: str) -> RefundView:
        ledger = await self.eda.ledger(order_id)
        parts = [p for p in ledger.refunds if p.refund_id == refund_id]
        if not parts:
            raise NotFound(f"no refund {refund_id[:64]!r}", code=RefundCode.REFUND_NOT_FOUND)
        return refund_view(order_id, refund_id, ledger.currency, parts)

    async def _send(
        self, order_id: str, part: RefundPartView, currency: str, unknown_outcome_raises: bool
    ) -> RefundPartView:
        """The part's refund at transactions (idempotent on the part id). A definite
        refusal gives the part back in eda; an unknown outcome leaves it refunding (the
        refund's task sends it again), or raises for that task."""
        amount = parse_amount(part.amount, currency) + parse_amount(part.tip, currency)
        try:
            op = await self.transactions.start_operation(
                part.invoice_id,
                OperationIn(
                    operation_id=part.part_id,
                    kind=OperationKind.REFUND,
                    target=part.payment_id,
                    amount=format_amount(amount, currency),
                ),
            )
        except Conflict as exc:
            if exc.code not in _REFUSED_BY_TRANSACTIONS:
                raise
            log.warning("refund_refused", order_id=order_id, part_id=part.part_id, code=exc.code)
            return await self._settle(order_id, part, succeeded=False, reason=str(exc.code))
        except (DependencyUnavailable, NotSent) as exc:
            if unknown_outcome_raises:
                raise
            log.warning(
                "refund_outcome_unknown",
                order_id=order_id,
                part_id=part.part_id,
                code=getattr(exc, "code", None),
            )
            return part
        if op.status is OperationStatus.SUCCEEDED:
            return await self._settle(order_id, part, succeeded=True)
        if op.status in (OperationStatus.FAILED, OperationStatus.CANCELED):
            return await self._settle(order_id, part, succeeded=False, reason=op.reason)
        return part

    async def on_outcome(self, callback: TransactionCallback) -> None:
        """transactions finished a refund: record it in eda, then take the cashback back."""
        if callback.status is OperationStatus.PENDING:
            return
        ledger = await self.eda.ledger(callback.order_id)
        part = next((p for p in ledger.refunds if p.part_id == callback.operation_id), None)
        if part is None:
            log.error(
                "refund_callback_for_unknown_part",
                order_id=callback.order_id,
                part_id=callback.operation_id,
            )
            return
        await self._settle(
            callback.order_id,
            part,
            succeeded=callback.status is OperationStatus.SUCCEEDED,
            reason=callback.reason,
            user_id=callback.user_id,
        )

    async def _settle(
        self,
        order_id: str,
        part: RefundPartView,
        *,
        succeeded: bool,
        reason: str | None = None,
        user_id: str | None = None,
    ) -> RefundPartView:
        move = "complete" if succeeded else "fail"
        try:
            moved = await self.eda.move_refund(order_id, move, part.part_id)
        except Conflict as exc:
            # Moved the other way already (a refund's outcome is final at the gateway:
            # that cannot happen but by a bug), or moved this way: the answer says which.
            log.error("refund_move_refused", order_id=order_id, part_id=part.part_id, code=exc.code)
            raise
        after = moved.part
        if part.state is RefundState.REFUNDING:  # this call settled it: count once
            self.metrics.refunds.labels("succeeded" if succeeded else "failed").inc()
            if succeeded:
                total = parse_amount(part.amount, moved.currency) + parse_amount(
                    part.tip, moved.currency
                )
                self.metrics.refunded.labels(moved.currency).inc(float(total))
            else:
                self.metrics.problems.labels("refund_failed").inc()
                log.warning(
                    "problem_refund", order_id=order_id, part_id=part.part_id, reason=reason
                )
        if succeeded:
            await self.reverse_cashback_now_or_later(order_id, part.part_id)
        return after

    async def reverse_cashback_now_or_later(self, order_id: str, part_id: str) -> None:
        try:
            await self.reverse_cashback(order_id, part_id)
        except QrpayError as exc:
            log.warning(
                "cashback_reversal_deferred", order_id=order_id, part_id=part_id, code=exc.code
            )
            await self.queue.put(
                TaskSpec(Task.REVERSE_CASHBACK.value, queue=TASK_QUEUE),
                task_id=f"reversal:{part_id}",
                payload={"order_id": order_id, "part_id": part_id},
            )

    async def reverse_cashback(self, order_id: str, part_id: str) -> None:
        """Take back the part's proportion of what its payment accrued (once: cashback keys
        the reversal by the part's id). Nothing accrued: nothing to take back."""
        ledger = await self.eda.ledger(order_id)
        part = next((p for p in ledger.refunds if p.part_id == part_id), None)
        payment = next(
            (p for p in ledger.payments if part and p.payment_id == part.payment_id), None
        )
        if part is None or payment is None or part.state is not RefundState.REFUNDED:
            return
        key = accrual_key(order_id, payment.invoice_id)
        cashback = await self.cashback.order(order_id)
        accrual = next((a for a in cashback.accruals if a.order_id == key), None)
        if accrual is None:
            log.info("no_cashback_to_reverse", order_id=order_id, part_id=part_id)
            return
        currency = ledger.currency
        amount = reversal_of(
            parse_amount(accrual.amount, accrual.currency),
            parse_amount(part.amount, currency),
            parse_amount(payment.amount, currency),
            accrual.currency,
        )
        if amount <= 0:
            return  # cashback refuses a reversal of nothing
        await self.cashback.reverse(
            key,
            part_id,
            ReversalIn(amount=format_amount(amount, accrual.currency), currency=accrual.currency),
        )
        log.info("cashback_reversed", order_id=order_id, part_id=part_id)
