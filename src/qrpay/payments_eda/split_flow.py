"""Paying a share of a split bill (issue 12), on the same flow as a whole-bill payment.

Each share is a payment of its own: eda reserves it at the price the guest saw, its hold
is an invoice of its own in transactions (invoice id = share id, so each guest's card and
cashback stay theirs), captured in one pass, and the clear's callback completes the share.
The decision table is the whole-bill one (``domain.decide``): a share's state reads as the
order status and payment phase it corresponds to. The rollback, the sweep and the fences
are the same as for a whole-bill payment, on the share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import structlog

from qrpay.cashback.client import CashbackClient
from qrpay.cashback.schemas import AccrualIn
from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import (
    EdaCode,
    LedgerView,
    OrderStatus,
    OrderView,
    PaymentPhase,
    ShareState,
    ShareView,
    StartShareRequest,
)
from qrpay.kernel.clock import Clock
from qrpay.kernel.errors import Conflict, DependencyUnavailable, InvalidInput, NotFound, QrpayError
from qrpay.kernel.money import format_amount, parse_amount
from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.payments_eda import domain
from qrpay.payments_eda.domain import Step
from qrpay.payments_eda.holds import captured_hold, hold_under_way
from qrpay.payments_eda.schemas import (
    TASK_QUEUE,
    GuestStatus,
    PaymentsCode,
    SharePayRequest,
    ShareStatusResponse,
    Task,
)
from qrpay.payments_eda.shares import allocate_cashback, tip_amount
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.schemas import (
    OperationIn,
    OperationKind,
    PaymentMethodRef,
    TransactionCallback,
    TransactionsCode,
)

log = structlog.get_logger("qrpay.payments_eda.split")

# A share's state as the decision table reads an order: (status, phase).
_AS_ORDER: dict[ShareState, tuple[OrderStatus, PaymentPhase | None]] = {
    ShareState.HOLDING: (OrderStatus.PAYMENT_IN_PROGRESS, PaymentPhase.HOLDING),
    ShareState.CLEARING: (OrderStatus.PAYMENT_IN_PROGRESS, PaymentPhase.CLEARING),
    ShareState.ROLLING_BACK: (OrderStatus.PAYMENT_IN_PROGRESS, PaymentPhase.ROLLING_BACK),
    ShareState.PAID: (OrderStatus.PAYED, None),
    ShareState.RELEASED: (OrderStatus.WAITING, None),
}

# eda's answers to a share move that no longer applies: the share moved on.
_STALE_SHARE_CODES = frozenset(
    {EdaCode.ALREADY_PAID, EdaCode.SHARE_RELEASED, EdaCode.PAYMENT_CLEARING}
)

# eda's refusals of a share, passed on in the guest's words.
SHARE_CODES: dict[str, PaymentsCode] = {
    EdaCode.ALREADY_PAID: PaymentsCode.ALREADY_PAID,
    EdaCode.ORDER_CLOSED: PaymentsCode.ORDER_CLOSED,
    EdaCode.BILL_CHANGED: PaymentsCode.BILL_CHANGED,
    EdaCode.PAYMENT_IN_PROGRESS: PaymentsCode.PAYMENT_IN_PROGRESS,
    EdaCode.SHARE_PRICE_CHANGED: PaymentsCode.SHARE_PRICE_CHANGED,
    "item_taken": PaymentsCode.ITEM_TAKEN,
    "amount_exceeds_left": PaymentsCode.AMOUNT_EXCEEDS_LEFT,
    "nothing_left": PaymentsCode.NOTHING_LEFT,
    "unknown_item": PaymentsCode.UNKNOWN_ITEM,
    "item_not_payable": PaymentsCode.UNKNOWN_ITEM,
    "invalid_parts": PaymentsCode.INVALID_SHARE,
    "invalid_share_amount": PaymentsCode.INVALID_AMOUNT,
}


def accrual_key(order_id: str, share_id: str) -> str:
    """Cashback keys accruals by this: one per share, never two."""
    return f"{order_id}.{share_id}"


@dataclass(frozen=True)
class Card:
    id: str
    token: str


class SharePayments:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig,
        clock: Clock,
        queue: TaskQueue,
        eda: EdaClient,
        transactions: TransactionsClient,
        cashback: CashbackClient,
        paid_counter: Any,
        problems_counter: Any,
    ) -> None:
        self._runtime = runtime
        self._clock = clock
        self._queue = queue
        self._eda = eda
        self._transactions = transactions
        self._cashback = cashback
        self._paid = paid_counter
        self._problems = problems_counter

    # --- the payer API -----------------------------------------------------------------

    async def pay(
        self, order: OrderView, request: SharePayRequest, user_id: str, card: Card, lang: str
    ) -> ShareStatusResponse:
        if order.status is OrderStatus.PAYED:
            raise domain.refused(PaymentsCode.ALREADY_PAID, lang)
        if order.status in (OrderStatus.CANCELED, OrderStatus.CLOSED):
            raise domain.refused(PaymentsCode.ORDER_CLOSED, lang)
        currency = order.bill.currency
        if request.currency is not None and request.currency != currency:
            raise domain.refused(PaymentsCode.BILL_CHANGED, lang)
        price = self._amount(request.amount, currency, PaymentsCode.INVALID_AMOUNT, lang)
        tip = self._tip(order, request, price, lang)
        share_id = uuid4().hex
        give_up_at = domain.hold_not_after(
            self._clock.now(), self._runtime.config.payments.hold_watchdog_seconds
        )
        try:
            await self._eda.start_share(
                order.order_id,
                StartShareRequest(
                    share_id=share_id,
                    choice=request.share,
                    amount=format_amount(price, currency),
                    tip=format_amount(tip, currency),
                    currency=currency,
                    bill_version=request.bill_version,
                ),
            )
        except (Conflict, InvalidInput) as exc:
            refused = SHARE_CODES.get(exc.code)
            if refused is None:
                raise
            raise type(exc)(domain.message(refused, lang), code=refused) from None
        except NotFound:
            code = PaymentsCode.ORDER_NOT_FOUND
            raise NotFound(domain.message(code, lang), code=code) from None
        waiting = self._answer(share_id, GuestStatus.WAITING, domain.MessageKey.IN_PROGRESS, lang)
        try:
            # The share's own invoice (its id is the share's): the tip is held and cleared
            # with the share.
            await self._transactions.start_operation(
                share_id,
                captured_hold(
                    share_id,
                    format_amount(price + tip, currency),
                    PaymentMethodRef(id=card.id, token=card.token),
                    order_id=order.order_id,
                    user_id=user_id,
                    currency=currency,
                    not_after=give_up_at,
                ),
            )
        except DependencyUnavailable as exc:
            # No definite answer: the hold may exist; its callback or the sweep settles it.
            log.warning("share_hold_outcome_unknown", share_id=share_id, code=exc.code)
            return waiting
        except QrpayError as exc:
            log.warning("share_hold_refused", share_id=share_id, code=exc.code)
            try:
                await self.roll_back(order.order_id, share_id)
            except QrpayError as rollback:
                log.warning("share_rollback_failed", share_id=share_id, code=rollback.code)
            raise DependencyUnavailable(
                "payments are unavailable, try again later",
                code=PaymentsCode.TRANSACTIONS_UNAVAILABLE,
            ) from None
        log.info("share_hold_started", order_id=order.order_id, share_id=share_id)
        return waiting

    def _amount(self, text: str, currency: str, code: PaymentsCode, lang: str) -> Decimal:
        try:
            return parse_amount(text, currency)
        except InvalidInput:
            raise InvalidInput(domain.message(code, lang), code=code) from None

    def _tip(
        self, order: OrderView, request: SharePayRequest, price: Decimal, lang: str
    ) -> Decimal:
        restaurant = self._runtime.config.restaurant(order.client_id)
        offered = [Decimal(p) for p in restaurant.tip_percents] if restaurant else []
        amount = None
        if request.tip is not None:
            amount = self._amount(request.tip, order.bill.currency, PaymentsCode.INVALID_TIP, lang)
        try:
            return tip_amount(
                price,
                order.bill.currency,
                percent=None if request.tip_percent is None else Decimal(request.tip_percent),
                amount=amount,
                offered_percents=offered,
            )
        except InvalidInput as exc:
            code = PaymentsCode(exc.code)
            raise InvalidInput(domain.message(code, lang), code=code) from None

    def _answer(
        self, share_id: str, status: GuestStatus, key: str, lang: str
    ) -> ShareStatusResponse:
        return ShareStatusResponse(
            share_id=share_id, status=status, message=domain.message(key, lang)
        )

    async def status(self, order: OrderView, share_id: str, lang: str) -> ShareStatusResponse:
        share = _share_of(await self._eda.ledger(order.order_id), share_id)
        if share is None:
            code = PaymentsCode.SHARE_NOT_FOUND
            raise NotFound(domain.message(code, lang), code=code)
        status, _ = _AS_ORDER[share.state]
        view = domain.guest_view(status, last_failed=share.state is ShareState.RELEASED)
        return self._answer(share_id, view.status, view.message, lang)

    # --- callbacks ---------------------------------------------------------------------

    async def on_transaction(self, callback: TransactionCallback) -> None:
        hold_id = domain.hold_of(callback.kind, callback.operation_id, callback.target)
        order_id = callback.order_id
        try:
            ledger = await self._eda.ledger(order_id)
        except NotFound:
            log.error("share_callback_for_unknown_order", order_id=order_id)
            return
        share = _share_of(ledger, hold_id)
        if share is None:
            log.error("callback_for_unknown_share", order_id=order_id, share_id=hold_id)
            return
        status, phase = _AS_ORDER[share.state]
        decision = domain.decide(
            callback.kind,
            callback.status,
            hold_id=hold_id,
            order_status=status,
            order_payment_id=hold_id,
            order_phase=phase,
        )
        log.info(
            "share_callback",
            order_id=order_id,
            operation_id=callback.operation_id,
            share_state=share.state.value,
            steps=[step.value for step in decision.steps],
        )
        if decision.problem is not None:
            self._problems.labels(decision.problem).inc()
        for step in decision.steps:
            ledger = await self._take(step, ledger, hold_id, callback)

    async def _take(
        self, step: Step, ledger: LedgerView, share_id: str, callback: TransactionCallback
    ) -> LedgerView:
        order_id = ledger.order_id
        if step is Step.CLAIM_CLEAR:
            return await self._eda.move_share(order_id, "claim-clear", share_id)
        if step is Step.START_CLEAR or step is Step.START_UNHOLD:
            clear = step is Step.START_CLEAR
            await self._transactions.start_operation(
                share_id,
                OperationIn(
                    operation_id=(domain.clear_id if clear else domain.unhold_id)(share_id),
                    kind=OperationKind.CLEAR if clear else OperationKind.UNHOLD,
                    target=share_id,
                ),
            )
        elif step is Step.FAIL_PAYMENT:
            await self._move_if_current(order_id, "fail", share_id)
        elif step is Step.COMPLETE_PAYMENT:
            paid = await self._eda.move_share(order_id, "complete", share_id)
            if ledger.status is not OrderStatus.PAYED and paid.status is OrderStatus.PAYED:
                # The counter is per restaurant, which the ledger does not name.
                order = await self._eda.get_order(order_id)
                self._paid.labels(order.client_id).inc()
                log.info("order_paid_by_shares", order_id=order_id)
            return paid
        elif step is Step.ACCRUE_CASHBACK:
            await self._accrue_now_or_later(ledger, share_id, callback.user_id)
        elif step is Step.RETRY:
            raise DependencyUnavailable(
                f"{callback.kind.value} {callback.operation_id} failed; retrying",
                code=PaymentsCode.OPERATION_FAILED,
            )
        return ledger

    async def _move_if_current(self, order_id: str, move: str, share_id: str) -> None:
        try:
            await self._eda.move_share(order_id, move, share_id)
        except Conflict as exc:
            if exc.code not in _STALE_SHARE_CODES:
                raise

    # --- cashback ----------------------------------------------------------------------

    async def _accrue_now_or_later(
        self, ledger: LedgerView, share_id: str, user_id: str | None
    ) -> None:
        if user_id is not None:
            try:
                await self._accrue_for(ledger, share_id, user_id)
                return
            except QrpayError as exc:
                log.warning("share_cashback_deferred", share_id=share_id, code=exc.code)
        await self._queue.put(
            TaskSpec(Task.ACCRUE_CASHBACK.value, queue=TASK_QUEUE),
            task_id=f"cashback:{accrual_key(ledger.order_id, share_id)}",
            payload={"order_id": ledger.order_id, "share_id": share_id},
        )

    async def accrue(self, order_id: str, share_id: str) -> None:
        """The share's cashback, from the task when the inline accrual failed."""
        ledger = await self._eda.ledger(order_id)
        invoice = await self._transactions.get_invoice(share_id)
        await self._accrue_for(ledger, share_id, invoice.user_id)

    async def _accrue_for(self, ledger: LedgerView, share_id: str, user_id: str) -> None:
        config = self._runtime.config
        order = await self._eda.get_order(ledger.order_id)
        amounts = allocate_cashback(
            _paid_in_order(ledger), config.restaurant(order.client_id), config.cashback
        )
        amount = amounts.get(share_id, Decimal(0))
        if amount <= 0:
            return
        await self._cashback.accrue(
            accrual_key(ledger.order_id, share_id),
            AccrualIn(
                user_id=user_id,
                amount=domain.cashback_text(amount),
                currency=ledger.currency,
                source=order.client_id,
            ),
        )
        log.info("share_cashback_accrued", order_id=ledger.order_id, share_id=share_id)

    # --- rollback and sweep ------------------------------------------------------------

    async def roll_back(self, order_id: str, share_id: str) -> domain.Rollback:
        """As ``PaymentsService._roll_back``, on one share: claim, void, then give back."""
        try:
            ledger = await self._eda.move_share(order_id, "begin-rollback", share_id)
        except Conflict as exc:
            if exc.code in _STALE_SHARE_CODES:
                return domain.Rollback.MOVED_ON
            raise
        share = _share_of(ledger, share_id)
        if share is None or share.state is not ShareState.ROLLING_BACK:
            return domain.Rollback.MOVED_ON
        try:
            voided = await self._transactions.void_hold(
                share_id, share_id, domain.unhold_id(share_id)
            )
        except NotFound:
            pass  # no invoice: no hold; a late one is refused past its not_after
        except Conflict as exc:
            if exc.code != TransactionsCode.HOLD_CLEARING:
                raise
            return domain.Rollback.CLEARING
        else:
            if not voided.outcome.final:
                return domain.Rollback.WAITS
        await self._move_if_current(order_id, "fail", share_id)
        return domain.Rollback.GIVEN_BACK

    async def sweep(self, cutoff: datetime) -> int:
        """Shares whose hold has had no outcome since ``cutoff`` are rolled back, as
        whole-bill payments are (``PaymentsService.sweep_stuck_payments``)."""
        listed = (await self._eda.shares_to_check(cutoff)).shares
        for item in listed:
            try:
                if item.state is ShareState.HOLDING and await hold_under_way(
                    self._transactions, item.share_id, item.share_id
                ):
                    continue
                if await self.roll_back(item.order_id, item.share_id) is domain.Rollback.GIVEN_BACK:
                    self._problems.labels("hold_not_started").inc()
            except QrpayError as exc:
                log.info("share_check_later", share_id=item.share_id, code=exc.code)
        return len(listed)


def _share_of(ledger: LedgerView, share_id: str) -> ShareView | None:
    return next((s for s in ledger.shares if s.share_id == share_id), None)


def _paid_in_order(ledger: LedgerView) -> list[tuple[str, Decimal]]:
    """Paid shares in the order they were paid: the cap is shared first come, first served."""
    paid = [s for s in ledger.shares if s.state is ShareState.PAID]
    paid.sort(key=lambda s: (s.updated_at, s.share_id))
    return [(s.share_id, Decimal(s.amount)) for s in paid]
