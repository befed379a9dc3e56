"""payments-eda's use cases: the payer API and the processing of queue tasks.

The order lives in eda, the money in transactions, the cards in cardstorage and the
ledger in cashback; this service keeps no state but its queue tasks. Every step it
takes is idempotent on ids it derives from the payment id, so a retried task or a
repeated request cannot make a second hold, clear or accrual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4
from weakref import WeakKeyDictionary

import structlog
from prometheus_client import Counter, Gauge

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodPublic, PaymentMethodType
from qrpay.cashback.client import CashbackClient
from qrpay.cashback.schemas import AccrualIn
from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import (
    EdaCode,
    OrderStatus,
    OrderView,
    PaymentPhase,
    QuoteView,
    ShareChoice,
    ShareState,
    StartPaymentRequest,
)
from qrpay.kernel import deeplink
from qrpay.kernel.clock import Clock
from qrpay.kernel.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    QrpayError,
    Unauthenticated,
)
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.money import parse_amount
from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.payments_eda import domain
from qrpay.payments_eda.domain import MessageKey, Rollback, Step
from qrpay.payments_eda.holds import captured_hold, hold_under_way
from qrpay.payments_eda.schemas import (
    TASK_QUEUE,
    CashbackView,
    GuestStatus,
    PaymentsCode,
    PaymentStatusResponse,
    PayRequest,
    PreorderResponse,
    RestaurantView,
    SharePayRequest,
    ShareStatusResponse,
    SplitShareView,
    SplitView,
    Task,
)
from qrpay.payments_eda.split_flow import SHARE_CODES as _SHARE_CODES
from qrpay.payments_eda.split_flow import Card, SharePayments
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.schemas import (
    Operation,
    OperationIn,
    OperationKind,
    PaymentMethodRef,
    TransactionCallback,
    TransactionsCode,
)

log = structlog.get_logger("qrpay.payments_eda")

# eda's order ids are uuid4 hex; anything else cannot be an order and never reaches eda's URLs.
# Matched with ``fullmatch``: ``$`` would also match before a trailing newline.
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# eda's answers to a payment transition that no longer applies: the order moved on.
_STALE_PAYMENT_CODES = frozenset(
    {
        EdaCode.PAYMENT_MISMATCH,
        EdaCode.ALREADY_PAID,
        EdaCode.ORDER_CLOSED,
        # The payment's clear claimed the order: it is the clear's to finish, not ours.
        EdaCode.PAYMENT_CLEARING,
    }
)
# eda's refusals of a payment start, as payments-eda tells the guest (in the guest's words).
_REFUSED_BY_EDA: dict[str, PaymentsCode] = {
    EdaCode.ALREADY_PAID: PaymentsCode.ALREADY_PAID,
    EdaCode.ORDER_CLOSED: PaymentsCode.ORDER_CLOSED,
    EdaCode.BILL_CHANGED: PaymentsCode.BILL_CHANGED,
}


def task_spec(task: Task) -> TaskSpec:
    """A task of payments-eda's queue, by name (``payments_eda.tasks`` registers the handlers)."""
    return TaskSpec(task.value, queue=TASK_QUEUE)


@dataclass(frozen=True)
class PaymentsMetrics:
    orders_viewed: Counter
    orders_paid: Counter
    problem_orders: Counter
    cashback_problems: Counter
    hmac_rejections: Counter
    queue_depth: Gauge
    queue_failed: Gauge
    payments_overdue: Gauge

    @classmethod
    def of(cls, metrics: ServiceMetrics) -> PaymentsMetrics:
        """One set per registry, so the app and a worker in one process can share it."""
        known = _METRICS.get(metrics)
        if known is None:
            known = _METRICS[metrics] = cls(
                orders_viewed=metrics.counter(
                    "qrpay_orders_viewed_by_qr",
                    "Orders opened by a guest's QR scan",
                    ("client_id",),
                ),
                orders_paid=metrics.counter(
                    "qrpay_orders_paid_by_qr", "Orders paid through the app", ("client_id",)
                ),
                problem_orders=metrics.counter(
                    "qrpay_problem_orders", "Orders whose payment failed", ("reason",)
                ),
                cashback_problems=metrics.counter(
                    "qrpay_cashback_problems", "Cashback accruals given up after every try"
                ),
                hmac_rejections=metrics.counter(
                    "qrpay_hmac_rejections", "Order requests with a missing or wrong signature"
                ),
                queue_depth=metrics.gauge("qrpay_queue_depth", "Tasks waiting", ("queue",)),
                queue_failed=metrics.gauge(
                    "qrpay_queue_failed_tasks", "Tasks kept as failed after every try", ("queue",)
                ),
                payments_overdue=metrics.gauge(
                    "qrpay_payments_overdue",
                    "Payments under way past hold_watchdog_seconds or being rolled back, as "
                    "the last sweep found them",
                ),
            )
        return known


_METRICS: WeakKeyDictionary[ServiceMetrics, PaymentsMetrics] = WeakKeyDictionary()


def _not_found(lang: str) -> NotFound:
    code = PaymentsCode.ORDER_NOT_FOUND
    return NotFound(domain.message(code, lang), code=code)


class PaymentsService:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig,
        clock: Clock,
        queue: TaskQueue,
        eda: EdaClient,
        cardstorage: CardstorageClient,
        transactions: TransactionsClient,
        cashback: CashbackClient,
        metrics: PaymentsMetrics,
    ) -> None:
        self.shares = SharePayments(
            runtime=runtime,
            clock=clock,
            queue=queue,
            eda=eda,
            transactions=transactions,
            cashback=cashback,
            paid_counter=metrics.orders_paid,
            problems_counter=metrics.problem_orders,
        )
        self._runtime = runtime
        self._clock = clock
        self.queue = queue
        self._eda = eda
        self._cards = cardstorage
        self._transactions = transactions
        self._cashback = cashback
        self.metrics = metrics

    # --- the payer API -----------------------------------------------------------------------

    async def signed_order(self, order_id: str, signature: str | None, lang: str) -> OrderView:
        """The order, if the signature is the deep link's; otherwise 404 like an unknown order."""
        if not _ORDER_ID.fullmatch(order_id):
            raise _not_found(lang)
        try:
            order = await self._eda.get_order(order_id)
        except NotFound:
            raise _not_found(lang) from None
        if not deeplink.verify(
            self._runtime.secdist.hmac_keys, order.order_id, order.client_id, signature or ""
        ):
            self.metrics.hmac_rejections.inc()
            log.info("hmac_rejected", order_id=order_id)
            raise _not_found(lang)
        return order

    async def preorder(
        self, order_id: str, signature: str | None, user_id: str | None, lang: str
    ) -> PreorderResponse:
        order = await self.signed_order(order_id, signature, lang)
        config = self._runtime.config
        restaurant = config.restaurant(order.client_id)
        methods: list[PaymentMethodPublic] = []
        if user_id:
            methods = await self._cards.list_for_user(user_id)
        amount = domain.cashback_amount(order.bill.total, restaurant, config.cashback)
        self.metrics.orders_viewed.labels(order.client_id).inc()
        return PreorderResponse(
            order_id=order.order_id,
            status=order.status,
            restaurant=RestaurantView(
                id=order.client_id, name=restaurant.name if restaurant else order.client_id
            ),
            bill=order.bill,
            payment_methods=methods,
            bill_version=order.bill_version,
            cashback=CashbackView(
                rate=domain.rate_text(restaurant),
                amount=domain.cashback_text(amount),
                currency=order.bill.currency,
            ),
        )

    def _answer(self, status: GuestStatus, key: MessageKey, lang: str) -> PaymentStatusResponse:
        return PaymentStatusResponse(status=status, message=domain.message(key, lang))

    async def pay(
        self, request: PayRequest, user_id: str | None, lang: str
    ) -> PaymentStatusResponse:
        if not user_id:
            code = PaymentsCode.UNAUTHORIZED
            raise Unauthenticated(domain.message(code, lang), code=code)
        order = await self.signed_order(request.order_id, request.hmac, lang)
        waiting = self._answer(GuestStatus.WAITING, MessageKey.IN_PROGRESS, lang)
        if order.status is OrderStatus.PAYED:
            raise domain.refused(PaymentsCode.ALREADY_PAID, lang)
        if order.status in (OrderStatus.CANCELED, OrderStatus.CLOSED):
            raise domain.refused(PaymentsCode.ORDER_CLOSED, lang)
        if order.status is OrderStatus.PAYMENT_IN_PROGRESS:
            # A payment is under way (maybe this very request, repeated): never a second hold.
            return waiting
        currency = order.bill.currency
        try:
            amount = parse_amount(request.amount, currency)
        except InvalidInput:
            code = PaymentsCode.INVALID_AMOUNT
            raise InvalidInput(domain.message(code, lang), code=code) from None
        if (
            amount != order.bill.total
            or (request.currency is not None and request.currency != currency)
            or (request.bill_version is not None and request.bill_version != order.bill_version)
        ):
            raise domain.refused(PaymentsCode.BILL_CHANGED, lang)
        card = await self._card(user_id, request.payment_method.id, lang)

        payment_id = uuid4().hex
        give_up_at = domain.hold_not_after(
            self._clock.now(), self._runtime.config.payments.hold_watchdog_seconds
        )
        # eda's order is the durable record: whatever dies after the start below, the sweep
        # finds the order in PAYMENT_IN_PROGRESS and, if its hold never arrived, gives it back.
        try:
            await self._eda.start_payment(
                order.order_id,
                StartPaymentRequest(
                    payment_id=payment_id,
                    amount=order.bill.amount,
                    currency=currency,
                    bill_version=order.bill_version,
                ),
            )
        except Conflict as exc:
            if exc.code == EdaCode.PAYMENT_IN_PROGRESS:
                return waiting  # a concurrent duplicate won the race: its hold is the one
            refused = _REFUSED_BY_EDA.get(exc.code)
            if refused is None:
                raise
            raise domain.refused(refused, lang) from None
        except NotFound:
            raise _not_found(lang) from None

        try:
            # One call: the invoice with its first hold, captured (cleared by transactions in
            # the same pass once it succeeds; the clear's callback completes the order).
            await self._transactions.start_operation(
                order.order_id,
                captured_hold(
                    payment_id,
                    order.bill.amount,
                    PaymentMethodRef(id=card.id, token=card.token),
                    order_id=order.order_id,
                    user_id=user_id,
                    currency=currency,
                    not_after=give_up_at,
                ),
            )
        except DependencyUnavailable as exc:
            # No definite answer: the hold may exist. Never read as a failure: the payment
            # stays in progress; its callback or, if the hold never arrived, the watchdog's
            # rollback (void first) settles it.
            log.warning(
                "hold_outcome_unknown",
                order_id=order.order_id,
                payment_id=payment_id,
                code=exc.code,
            )
            return waiting
        except QrpayError as exc:
            # transactions refused the hold for good: no money can move for it.
            log.warning(
                "hold_refused", order_id=order.order_id, payment_id=payment_id, code=exc.code
            )
            await self._roll_back_best_effort(order.order_id, payment_id)
            raise DependencyUnavailable(
                "payments are unavailable, try again later",
                code=PaymentsCode.TRANSACTIONS_UNAVAILABLE,
            ) from None
        log.info("hold_started", order_id=order.order_id, payment_id=payment_id)
        return waiting

    async def pay_share(
        self, request: SharePayRequest, user_id: str | None, lang: str
    ) -> ShareStatusResponse:
        """A guest's share of a split bill (``split_flow``)."""
        if not user_id:
            code = PaymentsCode.UNAUTHORIZED
            raise Unauthenticated(domain.message(code, lang), code=code)
        order = await self.signed_order(request.order_id, request.hmac, lang)
        card = await self._card(user_id, request.payment_method.id, lang)
        return await self.shares.pay(order, request, user_id, Card(card.id, card.token), lang)

    async def share_status(
        self, order_id: str, signature: str | None, share_id: str, lang: str
    ) -> ShareStatusResponse:
        order = await self.signed_order(order_id, signature, lang)
        return await self.shares.status(order, share_id, lang)

    async def quote(
        self, order_id: str, signature: str | None, choice: ShareChoice, lang: str
    ) -> QuoteView:
        """What a share would cost now: the price the guest then pays with ``pay_share``."""
        order = await self.signed_order(order_id, signature, lang)
        try:
            return await self._eda.quote(order.order_id, choice)
        except (Conflict, InvalidInput) as exc:
            code = _SHARE_CODES.get(exc.code)
            if code is None:
                raise
            raise type(exc)(domain.message(code, lang), code=code) from None

    async def split(self, order_id: str, signature: str | None, lang: str) -> SplitView:
        """What the bill holds for the payer page: paid, being paid, left, and tip choices."""
        order = await self.signed_order(order_id, signature, lang)
        ledger = await self._eda.ledger(order.order_id)
        restaurant = self._runtime.config.restaurant(order.client_id)
        return SplitView(
            order_id=order.order_id,
            status=ledger.status,
            currency=ledger.currency,
            total=ledger.total,
            paid=ledger.paid,
            held=ledger.held,
            left=ledger.left,
            taken_items=ledger.taken_items,
            tip_percents=list(restaurant.tip_percents) if restaurant else [],
            shares=[
                SplitShareView(amount=s.amount, items=s.items, state=s.state)
                for s in ledger.shares
                if s.state is not ShareState.RELEASED
            ],
        )

    async def _card(self, user_id: str, method_id: str, lang: str) -> Any:
        code = PaymentsCode.PAYMENT_METHOD_UNAVAILABLE
        unavailable = InvalidInput(domain.message(code, lang), code=code)
        try:
            card = await self._cards.get_for_user(user_id, method_id)
        except NotFound:
            raise unavailable from None
        if card.user_id != user_id or not card.available or card.type is not PaymentMethodType.CARD:
            raise unavailable
        return card

    async def _roll_back_best_effort(self, order_id: str, payment_id: str) -> None:
        """If this fails too, the watchdog task rolls the order back later."""
        try:
            await self._roll_back(order_id, payment_id)
        except QrpayError as exc:
            log.warning("rollback_failed", order_id=order_id, payment_id=payment_id, code=exc.code)

    async def _roll_back(self, order_id: str, payment_id: str) -> Rollback:
        """Give the order back to the guest without ever leaving money taken.

        First the rollback claims the payment in eda (after that no owner-started clear
        can begin; if one claimed it first, the clear finishes it), then the hold is voided
        in transactions (canceled if it never reached the gateway, released if it
        succeeded; refused once its capture is recorded: then the clear finishes it), and
        only once that is final is the order WAITING again.
        """
        try:
            order = await self._eda.begin_rollback(order_id, payment_id)
        except Conflict as exc:
            if exc.code in _STALE_PAYMENT_CODES:
                return Rollback.MOVED_ON  # cleared, paid or moved on: nothing of ours
            raise
        if order.status is not OrderStatus.PAYMENT_IN_PROGRESS:
            return Rollback.MOVED_ON
        try:
            voided = await self._transactions.void_hold(
                order_id, payment_id, domain.unhold_id(payment_id)
            )
        except NotFound:
            pass  # no invoice: no hold; a late one finds the order given back and is released
        except Conflict as exc:
            if exc.code != TransactionsCode.HOLD_CLEARING:
                raise
            log.info("rollback_yields_to_clear", order_id=order_id, payment_id=payment_id)
            return Rollback.CLEARING
        else:
            if not voided.outcome.final:
                log.info(
                    "rollback_waits_for_hold",
                    order_id=order_id,
                    payment_id=payment_id,
                    outcome=voided.outcome.value,
                )
                return Rollback.WAITS
        await self._fail_payment(order_id, payment_id)
        return Rollback.GIVEN_BACK

    async def payment_status(
        self, order_id: str, signature: str | None, lang: str
    ) -> PaymentStatusResponse:
        order = await self.signed_order(order_id, signature, lang)
        last_failed = False
        if order.status is OrderStatus.WAITING:
            try:
                invoice = await self._transactions.get_invoice(order.order_id)
            except NotFound:
                pass
            else:
                last_failed = domain.last_attempt_failed(invoice.operations)
        view = domain.guest_view(order.status, last_failed=last_failed)
        return self._answer(view.status, view.message, lang)

    def polling_delay(self) -> Decimal:
        return self._runtime.config.payments.polling_delay_seconds

    # --- queue tasks -------------------------------------------------------------------------

    async def on_transaction(self, callback: TransactionCallback) -> None:
        """One transaction callback: read the order, look the row up, take its steps."""
        if callback.invoice_id != callback.order_id:
            # A share's invoice is its own (its id is the share's): see ``split_flow``.
            await self.shares.on_transaction(callback)
            return
        hold_id = domain.hold_of(callback.kind, callback.operation_id, callback.target)
        if not hold_id:
            log.error("callback_without_target", **callback.model_dump(mode="json"))
            return
        order_id = callback.order_id
        try:
            order = await self._eda.get_order(order_id)
        except NotFound:
            log.error("callback_for_unknown_order", order_id=order_id)
            return
        decision = domain.decide(
            callback.kind,
            callback.status,
            hold_id=hold_id,
            order_status=order.status,
            order_payment_id=order.payment_id,
            order_phase=order.payment_phase,
        )
        log.info(
            "transaction_callback",
            order_id=order_id,
            operation_id=callback.operation_id,
            kind=callback.kind.value,
            status=callback.status.value,
            order_status=order.status.value,
            steps=[step.value for step in decision.steps],
        )
        if decision.problem is not None:
            self.metrics.problem_orders.labels(decision.problem).inc()
            log.warning(
                "problem_order", order_id=order_id, payment_id=hold_id, reason=decision.problem
            )
        for step in decision.steps:
            order = await self._take(step, order, hold_id, callback)

    async def _take(
        self, step: Step, order: OrderView, hold_id: str, callback: TransactionCallback
    ) -> OrderView:
        """Take one step; the order as it stands after it (for the next step)."""
        order_id = order.order_id
        if step is Step.CLAIM_CLEAR:
            # A conflict raises: the retry reads the order again and decides anew.
            await self._eda.claim_clear(order_id, hold_id)
        elif step is Step.START_CLEAR:
            await self._start(order_id, domain.clear_id(hold_id), OperationKind.CLEAR, hold_id)
        elif step is Step.START_UNHOLD:
            await self._start(order_id, domain.unhold_id(hold_id), OperationKind.UNHOLD, hold_id)
        elif step is Step.FAIL_PAYMENT:
            await self._fail_payment(order_id, hold_id)
        elif step is Step.COMPLETE_PAYMENT:
            # A conflict raises: the retry reads the order again and decides anew.
            paid = await self._eda.complete_payment(order_id, hold_id)
            if order.status is not OrderStatus.PAYED and paid.status is OrderStatus.PAYED:
                self.metrics.orders_paid.labels(paid.client_id).inc()
                log.info("order_paid", order_id=order_id, payment_id=hold_id)
            return paid
        elif step is Step.ACCRUE_CASHBACK:
            await self._accrue_now_or_later(order, callback.user_id)
        elif step is Step.RETRY:
            raise DependencyUnavailable(
                f"{callback.kind.value} {callback.operation_id} failed"
                f" ({callback.reason or 'no reason'}); retrying",
                code=PaymentsCode.OPERATION_FAILED,
            )
        return order

    async def _accrue_now_or_later(self, order: OrderView, user_id: str | None) -> None:
        """The accrual right here; its own task (retried, given up and counted) if that fails."""
        if user_id is not None and order.status is OrderStatus.PAYED:
            try:
                await self._accrue_for(order, user_id)
                return
            except QrpayError as exc:
                log.warning("cashback_deferred", order_id=order.order_id, code=exc.code)
        await self.queue.put(
            task_spec(Task.ACCRUE_CASHBACK),
            task_id=f"cashback:{order.order_id}",
            payload={"order_id": order.order_id},
        )

    async def _start(
        self, order_id: str, operation_id: str, kind: OperationKind, hold_id: str
    ) -> Operation:
        return await self._transactions.start_operation(
            order_id, OperationIn(operation_id=operation_id, kind=kind, target=hold_id)
        )

    async def _fail_payment(self, order_id: str, payment_id: str) -> None:
        try:
            await self._eda.fail_payment(order_id, payment_id)
        except Conflict as exc:
            if exc.code not in _STALE_PAYMENT_CODES:
                raise

    async def accrue_cashback(
        self, order_id: str, attempt: int, share_id: str | None = None
    ) -> None:
        """Cashback for a paid order, or for a paid share of one; given up (and recorded)
        after the configured tries."""
        max_attempts = self._runtime.config.payments.cashback_max_attempts
        try:
            if share_id is None:
                await self._accrue(order_id)
            else:
                await self.shares.accrue(order_id, share_id)
        except QrpayError as exc:
            if attempt >= max_attempts:
                # It does not undo the payment: the guest paid; a human settles the cashback.
                self.metrics.cashback_problems.inc()
                log.error(
                    "cashback_given_up",
                    order_id=order_id,
                    attempts=attempt,
                    code=exc.code,
                    reason=exc.message,
                )
                return
            raise

    async def _accrue(self, order_id: str) -> None:
        order = await self._eda.get_order(order_id)
        if order.status is not OrderStatus.PAYED:
            log.warning("cashback_for_unpaid_order", order_id=order_id, status=order.status.value)
            return
        if self._cashback_of(order) <= 0:
            return
        invoice = await self._transactions.get_invoice(order_id)
        await self._accrue_for(order, invoice.user_id)

    def _cashback_of(self, order: OrderView) -> Decimal:
        config = self._runtime.config
        return domain.cashback_amount(
            order.bill.total, config.restaurant(order.client_id), config.cashback
        )

    async def _accrue_for(self, order: OrderView, user_id: str) -> None:
        """Accrue the paid ``order``'s cashback to ``user_id`` (once: cashback keys it by order)."""
        amount = self._cashback_of(order)
        if amount <= 0:
            return
        await self._cashback.accrue(
            order.order_id,
            AccrualIn(
                user_id=user_id,
                amount=domain.cashback_text(amount),
                currency=order.bill.currency,
                source=order.client_id,
            ),
        )
        log.info("cashback_accrued", order_id=order.order_id)

    async def sweep_stuck_payments(self) -> int:
        """Check every payment under way for longer than ``hold_watchdog_seconds`` (and every
        one being rolled back); returns how many were looked at.

        Runs periodically in every process that runs the queue workers: safe on several at
        once, as every step of ``hold_watchdog`` is idempotent. A payment that fails its
        check is left for the next sweep.
        """
        seconds = self._runtime.config.payments.hold_watchdog_seconds
        cutoff = self._clock.now() - timedelta(seconds=seconds)
        stuck = await self._eda.payments_to_check(cutoff)
        shares = await self.shares.sweep(cutoff)
        self.metrics.payments_overdue.set(len(stuck) + shares)
        for order in stuck:
            if order.payment_id is None:
                continue
            try:
                await self.hold_watchdog(order.order_id, order.payment_id)
            except QrpayError as exc:
                log.info(
                    "payment_check_later",
                    order_id=order.order_id,
                    payment_id=order.payment_id,
                    code=exc.code,
                )
        return len(stuck) + shares

    async def hold_watchdog(self, order_id: str, payment_id: str) -> None:
        """Roll back a payment whose hold never got an outcome; never starts a hold.

        A hold that exists with an outcome coming (pending at the gateway, succeeded and
        not settled) is left to its callback. Otherwise the rollback voids it first; while
        that is not final the task raises and the queue tries again later.
        """
        try:
            order = await self._eda.get_order(order_id)
        except NotFound:
            return
        if order.status is not OrderStatus.PAYMENT_IN_PROGRESS or order.payment_id != payment_id:
            return
        if order.payment_phase is PaymentPhase.CLEARING:
            return  # the clear owns it
        if order.payment_phase is not PaymentPhase.ROLLING_BACK and await hold_under_way(
            self._transactions, order_id, payment_id
        ):
            return  # its callback decides
        rollback = await self._roll_back(order_id, payment_id)
        if rollback is Rollback.WAITS:
            raise DependencyUnavailable(
                f"the rollback of {payment_id} waits for its hold's outcome",
                code=PaymentsCode.OPERATION_FAILED,
            )
        if rollback is not Rollback.GIVEN_BACK:
            return  # the clear (or whatever moved the order on) finishes it
        self.metrics.problem_orders.labels("hold_not_started").inc()
        log.warning("payment_rolled_back_by_watchdog", order_id=order_id, payment_id=payment_id)

    async def refresh_queue_gauges(self) -> None:
        counts = await self.queue.counts(TASK_QUEUE)
        row = counts.get(TASK_QUEUE, {})
        self.metrics.queue_depth.labels(TASK_QUEUE).set(row.get("todo", 0))
        self.metrics.queue_failed.labels(TASK_QUEUE).set(row.get("failed", 0))
