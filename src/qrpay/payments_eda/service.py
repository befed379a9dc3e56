"""payments-eda's use cases: the payer API and the processing of queue tasks.

The order and its payments live in eda, the money in transactions, the cards in
cardstorage and the ledger in cashback; this service keeps no state but its queue tasks.
One payment model (issue 18): every payment is a share of the bill, paying the whole bill
is the share of everything left, and one saga serves them all (pay, callback, rollback,
sweep, accrual). Every step is idempotent on ids derived from the payment id, and the
payment id from the guest's idempotency token, so a repeated request, a retried task or a
lost answer cannot make a second payment, hold, clear or accrual.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, TypeVar
from uuid import uuid4
from weakref import WeakKeyDictionary

import orjson
import structlog
from prometheus_client import Counter, Gauge

from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodPublic, PaymentMethodType
from qrpay.cashback.client import CashbackClient
from qrpay.cashback.schemas import AccrualIn
from qrpay.eda.client import EdaClient
from qrpay.eda.schemas import (
    EdaCode,
    LedgerCode,
    LedgerView,
    OrderStatus,
    OrderView,
    PaymentState,
    PaymentView,
    QuoteView,
    RefundState,
    ShareChoice,
    ShareWay,
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
from qrpay.kernel.http_client import NotSent, call_budget
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.money import format_amount, parse_amount
from qrpay.kernel.queue import TaskQueue, TaskSpec
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.payments_eda import domain
from qrpay.payments_eda.domain import MessageKey, Rollback, Step, accrual_key
from qrpay.payments_eda.holds import captured_hold, hold_under_way
from qrpay.payments_eda.refunds import RefundMetrics, Refunds
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
    payment_id_for,
)
from qrpay.payments_eda.shares import allocate_cashback, tip_amount
from qrpay.payments_eda.waits import OrderFollower, OrderWaits, until_changed
from qrpay.transactions.client import TransactionsClient
from qrpay.transactions.schemas import (
    OperationIn,
    OperationKind,
    PaymentMethodRef,
    TransactionCallback,
    TransactionsCode,
)

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

log = structlog.get_logger("qrpay.payments_eda")

Answer = TypeVar("Answer", bound=PaymentStatusResponse)


class _OrderRead(Protocol):
    """A read of eda about one order: the order or its payments."""

    @property
    def order_id(self) -> str: ...

    @property
    def client_id(self) -> str: ...


_OfOrder = TypeVar("_OfOrder", bound=_OrderRead)

# eda's order ids are uuid4 hex; anything else cannot be an order and never reaches eda's URLs.
# Matched with ``fullmatch``: ``$`` would also match before a trailing newline.
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# eda's answers to a payment move that no longer applies: the payment moved on.
_STALE_PAYMENT_CODES = frozenset(
    {
        EdaCode.ALREADY_PAID,
        EdaCode.PAYMENT_RELEASED,
        # A payment claimed by an owner-started clear (before issue 18): the clear's to finish.
        EdaCode.PAYMENT_CLEARING,
    }
)
# eda's refusals of a payment, as payments-eda tells the guest (in the guest's words).
_REFUSED_BY_EDA: dict[str, PaymentsCode] = {
    EdaCode.ALREADY_PAID: PaymentsCode.ALREADY_PAID,
    EdaCode.ORDER_CLOSED: PaymentsCode.ORDER_CLOSED,
    EdaCode.BILL_CHANGED: PaymentsCode.BILL_CHANGED,
    EdaCode.PAYMENT_IN_PROGRESS: PaymentsCode.PAYMENT_IN_PROGRESS,
    EdaCode.SHARE_PRICE_CHANGED: PaymentsCode.SHARE_PRICE_CHANGED,
    EdaCode.IDEMPOTENCY_TOKEN_REUSED: PaymentsCode.IDEMPOTENCY_TOKEN_REUSED,
    LedgerCode.ITEM_TAKEN: PaymentsCode.ITEM_TAKEN,
    LedgerCode.AMOUNT_EXCEEDS_LEFT: PaymentsCode.AMOUNT_EXCEEDS_LEFT,
    LedgerCode.NOTHING_LEFT: PaymentsCode.NOTHING_LEFT,
    LedgerCode.UNKNOWN_ITEM: PaymentsCode.UNKNOWN_ITEM,
    LedgerCode.ITEM_NOT_PAYABLE: PaymentsCode.UNKNOWN_ITEM,
    LedgerCode.INVALID_PARTS: PaymentsCode.INVALID_SHARE,
    LedgerCode.INVALID_SHARE_AMOUNT: PaymentsCode.INVALID_AMOUNT,
}
# The whole-bill route speaks its own (seed-era) words for some: guests who paid part of
# the bill are splitting it; a payment of everything left under way is the one to follow.
_WHOLE_BILL_REFUSALS: dict[str, PaymentsCode | None] = {
    EdaCode.SHARE_PRICE_CHANGED: PaymentsCode.SPLIT_UNDER_WAY,
    LedgerCode.AMOUNT_EXCEEDS_LEFT: PaymentsCode.SPLIT_UNDER_WAY,
    # None: without a token the guest follows the order's payment under way (WAITING).
    EdaCode.PAYMENT_IN_PROGRESS: None,
    LedgerCode.NOTHING_LEFT: None,
}


def request_hash(user_id: str, kind: str, request: PayRequest) -> str:
    """What a pay request asked for, for the idempotency token's check: a repeat must ask
    for the same payment (the signature aside, which is the same for the same order)."""
    body = request.model_dump(mode="json", exclude={"hmac"})
    digest = orjson.dumps({"user": user_id, "kind": kind, **body}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(digest).hexdigest()


@dataclass(frozen=True)
class Card:
    id: str
    token: str


@dataclass(frozen=True)
class Started:
    """A payment as its pay request leaves it."""

    payment_id: str
    view: domain.GuestView


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
    refunds: RefundMetrics

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
                refunds=RefundMetrics(
                    refunds=metrics.counter(
                        "qrpay_refunds", "Refund parts settled, by outcome", ("outcome",)
                    ),
                    refunded=metrics.counter(
                        "qrpay_refunded_amount",
                        "Money refunded to guests (bill part and tip), by currency",
                        ("currency",),
                    ),
                    problems=metrics.counter(
                        "qrpay_problem_refunds",
                        "Refund parts the gateway refused for good, by reason",
                        ("reason",),
                    ),
                ),
            )
        return known


_METRICS: WeakKeyDictionary[ServiceMetrics, PaymentsMetrics] = WeakKeyDictionary()


def _not_found(lang: str) -> NotFound:
    code = PaymentsCode.ORDER_NOT_FOUND
    return NotFound(domain.message(code, lang), code=code)


def _payment_of(ledger: LedgerView, payment_id: str) -> PaymentView | None:
    return next((p for p in ledger.payments if p.payment_id == payment_id), None)


def _refunded(payment: PaymentView | None, currency: str) -> str | None:
    """What refunds gave back of ``payment`` (bill part and tip), for the guest; None if nothing."""
    if payment is None:
        return None
    total = parse_amount(payment.refunded, currency) + parse_amount(payment.refunded_tip, currency)
    return format_amount(total, currency) if total > 0 else None


def _settled(answer: PaymentStatusResponse) -> bool:
    """Nothing more for a long-poll to wait for: the guest's payment has its outcome (a
    refund later changes what the guest sees, but nobody waits at the page for it)."""
    return answer.status is not GuestStatus.WAITING


def _paid_in_order(ledger: LedgerView) -> list[tuple[str, Decimal]]:
    """Paid payments in the order eda numbered them as they cleared: the cap is shared so."""
    paid = [p for p in ledger.payments if p.state is PaymentState.PAID]
    paid.sort(key=lambda p: (p.paid_seq or 0, p.payment_id))
    return [(p.payment_id, Decimal(p.amount)) for p in paid]


class PaymentsService:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig[QrpayConfig],
        clock: Clock,
        queue: TaskQueue,
        eda: EdaClient,
        cardstorage: CardstorageClient,
        transactions: TransactionsClient,
        cashback: CashbackClient,
        metrics: PaymentsMetrics,
    ) -> None:
        self._runtime = runtime
        self._clock = clock
        self.queue = queue
        self._eda = eda
        self._cards = cardstorage
        self._transactions = transactions
        self._cashback = cashback
        self.metrics = metrics
        self.refunds = Refunds(
            queue=queue,
            eda=eda,
            transactions=transactions,
            cashback=cashback,
            metrics=metrics.refunds,
        )
        # The guests' long-polls, woken by the follower (a job of the app's process: ``app``).
        self.waits = OrderWaits(lambda: runtime.config.payments.max_waiting)
        self.follower = OrderFollower(eda, clock, lambda: runtime.config.feed, self.waits)

    # --- the payer API -----------------------------------------------------------------------

    def _signed(self, order_id: str, client_id: str, signature: str | None, lang: str) -> None:
        if not deeplink.verify(
            self._runtime.secdist.hmac_keys, order_id, client_id, signature or ""
        ):
            self.metrics.hmac_rejections.inc()
            log.info("hmac_rejected", order_id=order_id)
            raise _not_found(lang)

    async def _read_signed(
        self,
        read: Callable[[str], Awaitable[_OfOrder]],
        order_id: str,
        signature: str | None,
        lang: str,
    ) -> _OfOrder:
        """What ``read`` gives for the order, if the signature is the deep link's; otherwise
        404 like an unknown order."""
        if not _ORDER_ID.fullmatch(order_id):
            raise _not_found(lang)
        try:
            found = await read(order_id)
        except NotFound:
            raise _not_found(lang) from None
        self._signed(found.order_id, found.client_id, signature, lang)
        return found

    async def signed_order(self, order_id: str, signature: str | None, lang: str) -> OrderView:
        """The order, if the signature is the deep link's; otherwise 404 like an unknown order."""
        return await self._read_signed(self._eda.get_order, order_id, signature, lang)

    async def signed_ledger(self, order_id: str, signature: str | None, lang: str) -> LedgerView:
        """The order's payments, if the signature is the deep link's (one read of eda)."""
        return await self._read_signed(self._eda.ledger, order_id, signature, lang)

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

    async def pay(
        self, request: PayRequest, token: str | None, user_id: str | None, lang: str
    ) -> PaymentStatusResponse:
        """The whole bill: the share of everything left, at the total the guest saw."""
        user = self._user(user_id, lang)
        order = await self.signed_order(request.order_id, request.hmac, lang)
        amount = self._amount(
            request.amount, order.bill.currency, PaymentsCode.INVALID_AMOUNT, lang
        )
        if amount != order.bill.total:
            raise domain.refused(PaymentsCode.BILL_CHANGED, lang)
        started = await self._pay(
            order,
            request,
            token=token,
            user_id=user,
            kind="whole",
            choice=ShareChoice(way=ShareWay.REST),
            price=amount,
            tip=Decimal(0),
            lang=lang,
        )
        return PaymentStatusResponse(
            status=started.view.status,
            message=domain.message(started.view.message, lang),
            payment_id=started.payment_id or None,
        )

    async def pay_share(
        self, request: SharePayRequest, token: str | None, user_id: str | None, lang: str
    ) -> ShareStatusResponse:
        """A guest's share of the bill at the price they were quoted, and a tip."""
        user = self._user(user_id, lang)
        if token is None:
            code = PaymentsCode.IDEMPOTENCY_TOKEN_REQUIRED
            raise InvalidInput(domain.message(code, lang), code=code)
        order = await self.signed_order(request.order_id, request.hmac, lang)
        currency = order.bill.currency
        price = self._amount(request.amount, currency, PaymentsCode.INVALID_AMOUNT, lang)
        started = await self._pay(
            order,
            request,
            token=token,
            user_id=user,
            kind="share",
            choice=request.share,
            price=price,
            tip=self._tip(order, request, price, lang),
            lang=lang,
        )
        return ShareStatusResponse(
            share_id=started.payment_id,
            status=started.view.status,
            message=domain.message(started.view.message, lang),
            payment_id=started.payment_id,
        )

    async def _pay(
        self,
        order: OrderView,
        request: PayRequest,
        *,
        token: str | None,
        user_id: str,
        kind: str,
        choice: ShareChoice,
        price: Decimal,
        tip: Decimal,
        lang: str,
    ) -> Started:
        """One payment: admitted by eda (or found there, for a repeated token), then its
        captured hold sent to transactions. Within ``payments.pay_budget_ms`` in all: the
        caller waits that long before it reads the outcome as unknown."""
        currency = order.bill.currency
        # The bill the guest saw, checked on the order just read (eda checks it again at the
        # start): a stale page is refused before a card is read or a payment begun.
        if (request.currency is not None and request.currency != currency) or (
            request.bill_version is not None and request.bill_version != order.bill_version
        ):
            raise domain.refused(PaymentsCode.BILL_CHANGED, lang)
        whole_bill = kind == "whole"
        payment_id = uuid4().hex if token is None else payment_id_for(order.order_id, token)
        waiting = Started(payment_id, domain.GuestView(GuestStatus.WAITING, MessageKey.IN_PROGRESS))
        payments = self._runtime.config.payments
        with call_budget(payments.pay_budget_ms / 1000):
            card = await self._card(user_id, request.payment_method.id, lang)
            try:
                started = await self._eda.start_payment(
                    order.order_id,
                    StartPaymentRequest(
                        payment_id=payment_id,
                        choice=choice,
                        amount=format_amount(price, currency),
                        tip=format_amount(tip, currency),
                        currency=currency,
                        bill_version=request.bill_version,
                        token=token,
                        request_hash=None
                        if token is None
                        else request_hash(user_id, kind, request),
                    ),
                )
            except (Conflict, InvalidInput) as exc:
                if whole_bill and exc.code in _WHOLE_BILL_REFUSALS:
                    code = _WHOLE_BILL_REFUSALS[exc.code]
                    if code is None and token is None:
                        return Started("", waiting.view)  # follow the payment under way
                    code = code or PaymentsCode.PAYMENT_IN_PROGRESS
                    raise domain.refused(code, lang) from None
                refused = _REFUSED_BY_EDA.get(exc.code)
                if refused is None:
                    raise
                raise type(exc)(domain.message(refused, lang), code=refused) from None
            except NotFound:
                raise _not_found(lang) from None
            except NotSent:
                raise  # eda never saw it: nothing began
            except DependencyUnavailable as exc:
                # eda may have admitted it: the guest follows the payment (the same token
                # names it); without a hold the sweep gives it back.
                log.warning("start_outcome_unknown", payment_id=payment_id, code=exc.code)
                return waiting
            payment = _payment_of(started, payment_id)
            if payment is None:  # pragma: no cover - eda answers the payment it started
                raise DependencyUnavailable(
                    "eda lost the payment", code=PaymentsCode.OPERATION_FAILED
                )
            if started.replayed and payment.state is not PaymentState.HOLDING:
                return Started(payment_id, domain.guest_view(started.status, payment.state))
            # A repeat of a payment still holding sends its hold again: the first may never
            # have reached transactions, and there the hold's id makes it the same one.
            try:
                await self._transactions.start_operation(
                    payment.invoice_id,
                    captured_hold(
                        payment.payment_id,
                        format_amount(Decimal(payment.amount) + Decimal(payment.tip), currency),
                        PaymentMethodRef(id=card.id, token=card.token),
                        order_id=order.order_id,
                        user_id=user_id,
                        currency=currency,
                        not_after=domain.hold_not_after(
                            self._clock.now(), payments.hold_watchdog_seconds
                        ),
                    ),
                )
            except DependencyUnavailable as exc:
                # No definite answer: the hold may exist. Never read as a failure: the payment
                # stays under way; its callback or, if the hold never arrived, the sweep's
                # rollback (void first) settles it.
                log.warning("hold_outcome_unknown", payment_id=payment_id, code=exc.code)
                return waiting
            except QrpayError as exc:
                # transactions refused the hold for good: no money can move for it.
                log.warning("hold_refused", payment_id=payment_id, code=exc.code)
                await self._roll_back_best_effort(order.order_id, payment_id, payment.invoice_id)
                raise DependencyUnavailable(
                    "payments are unavailable, try again later",
                    code=PaymentsCode.TRANSACTIONS_UNAVAILABLE,
                ) from None
        log.info("hold_started", order_id=order.order_id, payment_id=payment_id)
        return waiting

    def _user(self, user_id: str | None, lang: str) -> str:
        if not user_id:
            code = PaymentsCode.UNAUTHORIZED
            raise Unauthenticated(domain.message(code, lang), code=code)
        return user_id

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

    async def _card(self, user_id: str, method_id: str, lang: str) -> Card:
        code = PaymentsCode.PAYMENT_METHOD_UNAVAILABLE
        unavailable = InvalidInput(domain.message(code, lang), code=code)
        try:
            card = await self._cards.get_for_user(user_id, method_id)
        except NotFound:
            raise unavailable from None
        if card.user_id != user_id or not card.available or card.type is not PaymentMethodType.CARD:
            raise unavailable
        return Card(card.id, card.token)

    async def _awaited(
        self, order_id: str, wait_ms: int, read: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """``read()`` now, or once it changes within ``wait_ms`` (``waits``)."""
        return await until_changed(
            self.waits,
            order_id,
            read,
            wait_seconds=wait_ms / 1000,
            settled=_settled,
            following=self.follower.is_fresh,
            recheck_seconds=float(self.polling_delay()),
        )

    async def payment_status(
        self, order_id: str, signature: str | None, lang: str, wait_ms: int = 0
    ) -> PaymentStatusResponse:
        """The order's payment as the guest paying the whole bill follows it: its latest;
        with ``wait_ms``, once it changes (a long-poll)."""
        return await self._awaited(
            order_id, wait_ms, lambda: self._payment_status(order_id, signature, lang)
        )

    async def _payment_status(
        self, order_id: str, signature: str | None, lang: str
    ) -> PaymentStatusResponse:
        ledger = await self.signed_ledger(order_id, signature, lang)
        latest = ledger.payments[-1] if ledger.payments else None
        view = domain.guest_view(ledger.status, None if latest is None else latest.state)
        return PaymentStatusResponse(
            status=view.status,
            message=domain.message(view.message, lang),
            payment_id=None if latest is None else latest.payment_id,
            refunded=_refunded(latest, ledger.currency),
        )

    async def share_status(
        self, order_id: str, signature: str | None, share_id: str, lang: str, wait_ms: int = 0
    ) -> ShareStatusResponse:
        return await self._awaited(
            order_id, wait_ms, lambda: self._share_status(order_id, signature, share_id, lang)
        )

    async def _share_status(
        self, order_id: str, signature: str | None, share_id: str, lang: str
    ) -> ShareStatusResponse:
        ledger = await self.signed_ledger(order_id, signature, lang)
        payment = _payment_of(ledger, share_id)
        if payment is None:
            code = PaymentsCode.SHARE_NOT_FOUND
            raise NotFound(domain.message(code, lang), code=code)
        view = domain.guest_view(ledger.status, payment.state)
        return ShareStatusResponse(
            share_id=share_id,
            status=view.status,
            message=domain.message(view.message, lang),
            payment_id=share_id,
            refunded=_refunded(payment, ledger.currency),
        )

    async def quote(
        self, order_id: str, signature: str | None, choice: ShareChoice, lang: str
    ) -> QuoteView:
        """What a share would cost now: the price the guest then pays with ``pay_share``."""
        order = await self.signed_order(order_id, signature, lang)
        try:
            return await self._eda.quote(order.order_id, choice)
        except (Conflict, InvalidInput) as exc:
            code = _REFUSED_BY_EDA.get(exc.code)
            if code is None:
                raise
            raise type(exc)(domain.message(code, lang), code=code) from None

    async def split(self, order_id: str, signature: str | None, lang: str) -> SplitView:
        """What the bill holds for the payer page: paid, being paid, left, and tip choices."""
        ledger = await self.signed_ledger(order_id, signature, lang)
        restaurant = self._runtime.config.restaurant(ledger.client_id)
        return SplitView(
            order_id=ledger.order_id,
            status=ledger.status,
            currency=ledger.currency,
            total=ledger.total,
            paid=ledger.paid,
            held=ledger.held,
            left=ledger.left,
            taken_items=ledger.taken_items,
            tip_percents=list(restaurant.tip_percents) if restaurant else [],
            shares=[
                SplitShareView(amount=p.amount, items=p.items, state=p.state)
                for p in ledger.payments
                if p.state is not PaymentState.RELEASED
            ],
        )

    def polling_delay(self) -> Decimal:
        return self._runtime.config.payments.polling_delay_seconds

    # --- the saga: callbacks, rollback, sweep, accrual ------------------------------------------

    async def on_transaction(self, callback: TransactionCallback) -> None:
        """One transaction callback: find the payment, look the row up, take its steps."""
        if callback.kind is OperationKind.REFUND:
            await self.refunds.on_outcome(callback)
            return
        payment_id = domain.hold_of(callback.kind, callback.operation_id, callback.target)
        if not payment_id:
            log.error("callback_without_target", **callback.model_dump(mode="json"))
            return
        order_id = callback.order_id
        try:
            ledger = await self._eda.ledger(order_id)
        except NotFound:
            log.error("callback_for_unknown_order", order_id=order_id)
            return
        payment = _payment_of(ledger, payment_id)
        if payment is None:
            # A whole-bill payment given back before issue 18 left no record: nothing is ours.
            log.warning("callback_for_unknown_payment", order_id=order_id, payment_id=payment_id)
            return
        decision = domain.decide(callback.kind, callback.status, payment.state)
        log.info(
            "transaction_callback",
            order_id=order_id,
            payment_id=payment_id,
            operation_id=callback.operation_id,
            kind=callback.kind.value,
            status=callback.status.value,
            payment_state=payment.state.value,
            steps=[step.value for step in decision.steps],
        )
        if decision.problem is not None:
            self.metrics.problem_orders.labels(decision.problem).inc()
            log.warning(
                "problem_order", order_id=order_id, payment_id=payment_id, reason=decision.problem
            )
        for step in decision.steps:
            ledger = await self._take(step, ledger, payment, callback)

    async def _take(
        self, step: Step, ledger: LedgerView, payment: PaymentView, callback: TransactionCallback
    ) -> LedgerView:
        """Take one step; the ledger as it stands after it (for the next step)."""
        order_id = ledger.order_id
        if step is Step.START_UNHOLD:
            try:
                await self._transactions.start_operation(
                    payment.invoice_id,
                    OperationIn(
                        operation_id=domain.unhold_id(payment.payment_id),
                        kind=OperationKind.UNHOLD,
                        target=payment.payment_id,
                    ),
                )
            except Conflict as exc:
                # A captured hold: its clear is recorded, nothing is left to release.
                if exc.code != TransactionsCode.NOTHING_TO_RELEASE:
                    raise
        elif step is Step.FAIL_PAYMENT:
            await self._move_if_current(order_id, "fail", payment.payment_id)
        elif step is Step.COMPLETE_PAYMENT:
            # A conflict raises: the retry reads the payment again and decides anew.
            paid = await self._eda.move_payment(order_id, "complete", payment.payment_id)
            if ledger.status is not OrderStatus.PAYED and paid.status is OrderStatus.PAYED:
                self.metrics.orders_paid.labels(paid.client_id).inc()
                log.info("order_paid", order_id=order_id, payment_id=payment.payment_id)
            return paid
        elif step is Step.ACCRUE_CASHBACK:
            await self._accrue_now_or_later(ledger, payment.payment_id, callback.user_id)
        elif step is Step.RETRY:
            raise DependencyUnavailable(
                f"{callback.kind.value} {callback.operation_id} failed"
                f" ({callback.reason or 'no reason'}); retrying",
                code=PaymentsCode.OPERATION_FAILED,
            )
        return ledger

    async def _move_if_current(
        self, order_id: str, move: str, payment_id: str
    ) -> LedgerView | None:
        try:
            return await self._eda.move_payment(order_id, move, payment_id)
        except Conflict as exc:
            if exc.code not in _STALE_PAYMENT_CODES:
                raise
            return None

    async def _roll_back_best_effort(self, order_id: str, payment_id: str, invoice_id: str) -> None:
        """If this fails too, the sweep rolls the payment back later."""
        try:
            await self._roll_back(order_id, payment_id, invoice_id)
        except QrpayError as exc:
            log.warning("rollback_failed", order_id=order_id, payment_id=payment_id, code=exc.code)

    async def _roll_back(self, order_id: str, payment_id: str, invoice_id: str) -> Rollback:
        """Give the payment back without ever leaving money taken.

        First the rollback claims the payment in eda, then the hold is voided in
        transactions (canceled if it never reached the gateway, released if it succeeded;
        refused once its capture is recorded: then the clear finishes it), and only once
        that is final is the payment released.
        """
        claimed = await self._move_if_current(order_id, "begin-rollback", payment_id)
        payment = None if claimed is None else _payment_of(claimed, payment_id)
        if payment is None or payment.state is not PaymentState.ROLLING_BACK:
            return Rollback.MOVED_ON  # cleared, paid or given back: nothing of ours
        try:
            voided = await self._transactions.void_hold(
                invoice_id, payment_id, domain.unhold_id(payment_id)
            )
        except NotFound:
            pass  # no invoice: no hold; a late one is refused past its not_after
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
        await self._move_if_current(order_id, "fail", payment_id)
        return Rollback.GIVEN_BACK

    async def sweep_stuck_payments(self, *, page_size: int = 100) -> int:
        """Check every payment under way for longer than ``hold_watchdog_seconds`` (and every
        one being rolled back), a page at a time until none is left; returns how many were
        looked at.

        Runs periodically in every process that runs the queue workers: safe on several at
        once, as every step is idempotent. A payment that fails its check is left for the
        next sweep.
        """
        seconds = self._runtime.config.payments.hold_watchdog_seconds
        cutoff = self._clock.now() - timedelta(seconds=seconds)
        seen = 0
        after: str | None = None
        while True:
            page = await self._eda.payments_to_check(cutoff, after=after, limit=page_size)
            for item in page.payments:
                try:
                    await self.check_payment(
                        item.order_id, item.payment_id, item.invoice_id, item.state
                    )
                except QrpayError as exc:
                    log.info("payment_check_later", payment_id=item.payment_id, code=exc.code)
            seen += len(page.payments)
            if page.next is None:
                break
            after = page.next
        self.metrics.payments_overdue.set(seen)
        return seen

    async def check_payment(
        self, order_id: str, payment_id: str, invoice_id: str, state: PaymentState
    ) -> None:
        """Roll back a payment whose hold never got an outcome; never starts a hold.

        A hold that exists with an outcome coming (pending at the gateway, succeeded and
        not settled) is left to its callback. Otherwise the rollback voids it first; while
        that is not final the payment is looked at again by the next sweep.
        """
        if state is PaymentState.HOLDING and await hold_under_way(
            self._transactions, invoice_id, payment_id
        ):
            return  # its callback decides
        if await self._roll_back(order_id, payment_id, invoice_id) is Rollback.GIVEN_BACK:
            self.metrics.problem_orders.labels("hold_not_started").inc()
            log.warning("payment_rolled_back_by_sweep", order_id=order_id, payment_id=payment_id)

    # --- cashback ----------------------------------------------------------------------------

    async def _accrue_now_or_later(
        self, ledger: LedgerView, payment_id: str, user_id: str | None
    ) -> None:
        """The accrual right here; its own task (retried, given up and counted) if that fails."""
        if user_id is not None:
            try:
                await self._accrue_for(ledger, payment_id, user_id)
                return
            except QrpayError as exc:
                log.warning("cashback_deferred", payment_id=payment_id, code=exc.code)
        payment = _payment_of(ledger, payment_id)
        invoice_id = payment.invoice_id if payment is not None else payment_id
        await self.queue.put(
            task_spec(Task.ACCRUE_CASHBACK),
            task_id=f"cashback:{accrual_key(ledger.order_id, invoice_id)}",
            payload={"order_id": ledger.order_id, "payment_id": payment_id},
        )

    async def accrue_cashback(
        self, order_id: str, attempt: int, payment_id: str | None = None
    ) -> None:
        """Cashback for a paid payment (``payment_id`` None: the whole-bill payment of a task
        put before issue 18); given up (and recorded) after the configured tries."""
        max_attempts = self._runtime.config.payments.cashback_max_attempts
        try:
            await self._accrue(order_id, payment_id)
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

    async def _accrue(self, order_id: str, payment_id: str | None) -> None:
        ledger = await self._eda.ledger(order_id)
        if payment_id is None:
            whole = [p for p in ledger.payments if p.invoice_id == order_id]
            if not whole:
                log.warning("cashback_for_unknown_payment", order_id=order_id)
                return
            payment = whole[0]
        else:
            found = _payment_of(ledger, payment_id)
            if found is None:
                log.warning(
                    "cashback_for_unknown_payment", order_id=order_id, payment_id=payment_id
                )
                return
            payment = found
        if payment.state is not PaymentState.PAID:
            log.warning("cashback_for_unpaid_payment", order_id=order_id, state=payment.state.value)
            return
        invoice = await self._transactions.get_invoice(payment.invoice_id)
        await self._accrue_for(ledger, payment.payment_id, invoice.user_id)

    async def _accrue_for(self, ledger: LedgerView, payment_id: str, user_id: str) -> None:
        """Accrue the paid payment's cashback to ``user_id`` (once: cashback keys it)."""
        config = self._runtime.config
        restaurant = config.restaurant(ledger.client_id)
        amounts = allocate_cashback(_paid_in_order(ledger), restaurant, config.cashback)
        amount = amounts.get(payment_id, Decimal(0))
        payment = _payment_of(ledger, payment_id)
        if amount <= 0 or payment is None:
            return
        await self._cashback.accrue(
            accrual_key(ledger.order_id, payment.invoice_id),
            AccrualIn(
                user_id=user_id,
                amount=domain.cashback_text(amount),
                currency=ledger.currency,
                source=ledger.client_id,
            ),
        )
        log.info("cashback_accrued", order_id=ledger.order_id, payment_id=payment_id)
        # A refund that came first found nothing to take back: it is taken back now (each
        # reversal once, by its part's id, whichever of the two gets there second).
        for part in ledger.refunds:
            if part.payment_id == payment_id and part.state is RefundState.REFUNDED:
                await self.refunds.reverse_cashback_now_or_later(ledger.order_id, part.part_id)

    async def refresh_queue_gauges(self) -> None:
        counts = await self.queue.counts(TASK_QUEUE)
        row = counts.get(TASK_QUEUE, {})
        self.metrics.queue_depth.labels(TASK_QUEUE).set(row.get("todo", 0))
        self.metrics.queue_failed.labels(TASK_QUEUE).set(row.get("failed", 0))
