"""An order's payments: price one, begin it, move it, refund it, show the ledger, list
overdue ones.

Every change locks the order's row first (on SQLite the write transaction holds the
database), reads its payments, lets ``eda.ledger`` decide and writes the payment with the
order's new status and version (``Order.settle``): two guests at once are decided one after
the other, and the database refuses what a wrong decision would let through (an item taken
twice, a second payment for one token). A refund's admission and its parts' outcomes go the
same way (``Ledger.refund``): refunds of one order are admitted one after the other, and
each writes the order's new version (``Order.refund_changed``) for the change feed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from qrpay.eda.domain import Order
from qrpay.eda.ledger import Ledger, Payment, PaymentMoveRefused
from qrpay.eda.payment_repository import (
    Ledgered,
    PaymentRepository,
    PaymentTimes,
    fetch_ledger,
    payments_to_check,
    refund_problems,
)
from qrpay.eda.refunds import Refund, RefundMoveRefused, RefundPart
from qrpay.eda.repository import OrderRepository
from qrpay.eda.schemas import (
    EdaCode,
    LedgerCode,
    OrderStatus,
    PaymentState,
    RefundRequest,
    RefundState,
    ShareChoice,
    ShareWay,
    StartPaymentRequest,
)
from qrpay.eda.service import ATTEMPTS, OrderService, _busy, _not_found
from qrpay.kernel.clock import wire_time
from qrpay.kernel.errors import Conflict, InvalidInput, NotFound
from qrpay.kernel.money import format_amount, parse_amount

PAID, RELEASED = PaymentState.PAID, PaymentState.RELEASED


class _Lost(Exception):
    """The order changed under the decision: roll the transaction back and decide again."""


def price(ledger: Ledger, choice: ShareChoice) -> Decimal:
    """What ``choice`` costs on ``ledger`` now."""
    if choice.way == ShareWay.REST:
        return ledger.everything_left()
    if choice.way == ShareWay.EQUAL:
        if choice.parts is None:
            raise InvalidInput("an equal share names its parts", code=LedgerCode.INVALID_PARTS)
        return ledger.equal_share(choice.parts)
    if choice.way == ShareWay.ITEMS:
        return ledger.items_amount(choice.items)
    if choice.amount is None:
        raise InvalidInput("a custom share names its amount", code=LedgerCode.INVALID_SHARE_AMOUNT)
    return ledger.custom_amount(parse_amount(choice.amount, ledger.currency))


def _refused(exc: PaymentMoveRefused) -> Conflict:
    if exc.current == RELEASED:
        return Conflict("the payment was given back", code=EdaCode.PAYMENT_RELEASED)
    if exc.current == PAID:
        return Conflict("the payment is cleared", code=EdaCode.ALREADY_PAID)
    if exc.current == PaymentState.CLEARING:
        return Conflict("the payment is being cleared", code=EdaCode.PAYMENT_CLEARING)
    return Conflict("the payment is being rolled back", code=EdaCode.PAYMENT_ROLLING_BACK)


def ledger_wire(read: Ledgered) -> dict[str, Any]:
    order, ledger = read.order, read.ledger
    currency = order.bill.currency

    def money(value: Decimal) -> str:
        return format_amount(value, currency)

    def payment_wire(p: Payment) -> dict[str, Any]:
        refunded, refunded_tip = ledger.refunded_of(p.id)
        began, changed = read.payment_times[p.id]
        return {
            "payment_id": p.id,
            "invoice_id": p.invoice_id,
            "amount": money(p.amount),
            "tip": money(p.tip),
            "items": sorted(p.items),
            "state": p.state.value,
            "paid_seq": p.paid_seq,
            "created_at": wire_time(began),
            "updated_at": wire_time(changed),
            "refunded": money(refunded),
            "refunded_tip": money(refunded_tip),
        }

    return {
        "order_id": order.id,
        "client_id": order.client_id,
        "status": order.status.value,
        "currency": currency,
        "total": money(ledger.total),
        "paid": money(ledger.paid),
        "held": money(ledger.held),
        "left": money(max(ledger.left, Decimal(0))),
        "tips": money(ledger.tips),
        "taken_items": sorted(ledger.taken_items()),
        "payments": [payment_wire(p) for p in ledger.payments],
        "refunded": money(ledger.refunded),
        "refunded_tips": money(ledger.refunded_tips),
        "refunded_fully": ledger.refunded_fully,
        "refunds": [refund_part_wire(read, part) for part in ledger.refunds],
    }


def refund_part_wire(read: Ledgered, part: RefundPart) -> dict[str, Any]:
    currency = read.order.bill.currency
    payment = read.ledger.payment(part.payment_id)
    began, changed = read.refund_times[part.id]
    return {
        "part_id": part.id,
        "refund_id": part.refund_id,
        "payment_id": part.payment_id,
        "invoice_id": payment.invoice_id if payment is not None else part.payment_id,
        "amount": format_amount(part.amount, currency),
        "tip": format_amount(part.tip, currency),
        "state": part.state.value,
        "created_at": wire_time(began),
        "updated_at": wire_time(changed),
    }


class PaymentService:
    def __init__(self, orders: OrderService) -> None:
        self.orders = orders
        self.db = orders.db
        self.clock = orders.clock

    async def ledger(self, order_id: str) -> dict[str, Any]:
        read = await fetch_ledger(self.db, order_id)
        if read is None:
            raise _not_found(order_id)
        return ledger_wire(read)

    async def refund_problems(self, refunding_before: datetime, limit: int) -> dict[str, Any]:
        return {"refunds": await refund_problems(self.db, refunding_before, limit)}

    async def to_check(
        self, updated_before: datetime, limit: int, after: str | None
    ) -> dict[str, Any]:
        page, cursor = await payments_to_check(self.db, updated_before, limit, after)
        return {"payments": page, "next": cursor}

    async def quote(self, order_id: str, choice: ShareChoice) -> dict[str, str]:
        """The price of ``choice`` now, reserving nothing."""
        read = await fetch_ledger(self.db, order_id)
        if read is None:
            raise _not_found(order_id)
        order, ledger = read.order, read.ledger
        order.check_payable(order.bill.currency, None)
        currency = order.bill.currency
        return {
            "amount": format_amount(price(ledger, choice), currency),
            "left": format_amount(ledger.left, currency),
        }

    async def start(self, order_id: str, request: StartPaymentRequest) -> dict[str, Any]:
        """Reserve the payment at the price the guest saw, or refuse (409) if it changed. A
        repeat of a start (the same payment id, hence the same token) answers the payment as
        it stands, whatever it became; with another request behind it, 409."""
        agreed = parse_amount(request.amount, request.currency)
        tip = parse_amount(request.tip, request.currency)
        replayed = False

        async def begin(
            order: Order, ledger: Ledger, repo: PaymentRepository
        ) -> tuple[Order, Ledger]:
            nonlocal replayed
            earlier = ledger.payment(request.payment_id)
            if earlier is not None:
                if (
                    earlier.request_hash != request.request_hash
                    or earlier.amount != agreed
                    or earlier.items != frozenset(request.choice.items)
                ):
                    raise Conflict(
                        "this idempotency token came with another request",
                        code=EdaCode.IDEMPOTENCY_TOKEN_REUSED,
                    )
                replayed = True
                return order, ledger
            order.check_payable(request.currency, request.bill_version)
            now_price = price(ledger, request.choice)
            if now_price != agreed:
                raise Conflict(
                    f"the share now costs {format_amount(now_price, request.currency)}: "
                    "another guest paid meanwhile",
                    code=EdaCode.SHARE_PRICE_CHANGED,
                )
            payment = Payment(
                id=request.payment_id,
                amount=agreed,
                tip=tip,
                items=frozenset(request.choice.items),
                state=PaymentState.HOLDING,
                invoice_id=request.payment_id,
                token=request.token,
                request_hash=request.request_hash,
            )
            admitted = ledger.admit(payment)  # refuses a payment that does not fit
            now = self.clock.now()
            try:
                await repo.add(order_id, payment, request.currency, now)
            except IntegrityError:
                # The same token under another payment id, or an item a wrong decision let
                # through: the constraints, not the code, have the last word.
                raise _Lost from None
            return order.settle(admitted, now), admitted

        answer = await self._change(order_id, begin)
        return {**ledger_wire(answer), "payment_id": request.payment_id, "replayed": replayed}

    async def move(self, order_id: str, payment_id: str, to: PaymentState) -> dict[str, Any]:
        """The payment's hold claimed by its rollback, given back, or cleared."""

        async def step(
            order: Order, ledger: Ledger, repo: PaymentRepository
        ) -> tuple[Order, Ledger]:
            current = ledger.payment(payment_id)
            if current is None:
                raise NotFound(f"no payment {payment_id[:64]!r}", code=EdaCode.PAYMENT_NOT_FOUND)
            try:
                moved = ledger.move(payment_id, to)
            except PaymentMoveRefused as exc:
                raise _refused(exc) from None
            if moved is ledger:
                return order, ledger
            after = moved.payment(payment_id)
            assert after is not None
            now = self.clock.now()
            if not await repo.move(current, after, now):
                raise _Lost
            return order.settle(moved, now), moved

        return ledger_wire(await self._change(order_id, step))

    async def refund(self, order_id: str, request: RefundRequest) -> dict[str, Any]:
        """Admit a refund: its parts ``refunding``, each reserving money of a paid payment
        (``Ledger.refund``). A repeat of the refund id with the same request answers its
        parts as they stand; with another request, 409."""
        parts: tuple[RefundPart, ...] = ()
        replayed = False

        async def admit(
            order: Order, ledger: Ledger, repo: PaymentRepository
        ) -> tuple[Order, Ledger]:
            nonlocal parts, replayed
            currency = order.bill.currency
            if request.currency is not None and request.currency != currency:
                raise InvalidInput(
                    f"the order is paid in {currency}", code=EdaCode.INVALID_REFUND_AMOUNT
                )
            wanted = Refund.of(
                request.refund_id,
                parse_amount(request.amount, currency),
                parse_amount(request.tip, currency),
                request.payment_id,
                currency,
                request.request_hash,
            )
            admitted, parts, replayed = ledger.refund(wanted)
            if replayed:
                return order, ledger
            now = self.clock.now()
            try:
                await repo.add_refund(order_id, parts, currency, now)
            except IntegrityError:
                # A refund id written meanwhile (the lock makes it rare): decide again.
                raise _Lost from None
            return order.refund_changed(admitted, now), admitted

        answer = await self._change(order_id, admit)
        return {
            **ledger_wire(answer),
            "refund_id": request.refund_id,
            "replayed": replayed,
            "parts": [refund_part_wire(answer, part) for part in parts],
        }

    async def move_refund(self, order_id: str, part_id: str, to: RefundState) -> dict[str, Any]:
        """A refund part refunded or failed; a repeat of its move answers it as it stands."""

        async def step(
            order: Order, ledger: Ledger, repo: PaymentRepository
        ) -> tuple[Order, Ledger]:
            current = ledger.refund_part(part_id)
            if current is None:
                raise NotFound(f"no refund part {part_id[:64]!r}", code=EdaCode.REFUND_NOT_FOUND)
            try:
                moved = ledger.move_refund(part_id, to)
            except RefundMoveRefused as exc:
                raise Conflict(
                    f"the refund part is {exc.current}", code=EdaCode.REFUND_MOVE_REFUSED
                ) from None
            if moved is ledger:
                return order, ledger
            after = moved.refund_part(part_id)
            assert after is not None
            now = self.clock.now()
            if not await repo.move_refund(order_id, current, after, now):
                raise _Lost
            return order.refund_changed(moved, now), moved

        answer = await self._change(order_id, step)
        part = answer.ledger.refund_part(part_id)
        assert part is not None
        return {**ledger_wire(answer), "part": refund_part_wire(answer, part)}

    async def _change(
        self,
        order_id: str,
        decide: Callable[[Order, Ledger, PaymentRepository], Awaitable[tuple[Order, Ledger]]],
    ) -> Ledgered:
        for _ in range(ATTEMPTS):
            try:
                async with self.db.write() as session:
                    repo = PaymentRepository(session)
                    read = await repo.ledger(order_id, for_update=True)
                    if read is None:
                        raise _not_found(order_id)
                    order, before = read.order, read.ledger
                    orders = OrderRepository(session)
                    changed, after = await decide(order, before, repo)
                    if changed is not order and not await orders.save(order, changed):
                        raise _Lost
            except _Lost:
                continue
            if changed is not order:
                self.orders.changed.fire()
                if changed.status == OrderStatus.PAYED and order.status != OrderStatus.PAYED:
                    self.orders.metrics.paid.inc()
            # The answer is what was decided and written: no second read of it.
            if after is before:
                return replace(read, order=changed)
            now = changed.updated_at
            return Ledgered(
                changed,
                after,
                _times_after(before.payments, after.payments, read.payment_times, now),
                _times_after(before.refunds, after.refunds, read.refund_times, now),
            )
        raise _busy()


def _times_after(
    before: Iterable[Payment | RefundPart],
    after: Iterable[Payment | RefundPart],
    times: PaymentTimes,
    now: datetime,
) -> PaymentTimes:
    """When each payment (or refund part) began and last changed, once ``after`` is written
    (at the order's ``updated_at``, the decision's moment)."""
    earlier = {record.id: record for record in before}
    result = dict(times)
    for record in after:
        if record.id not in times:
            result[record.id] = (now, now)
        elif earlier.get(record.id) != record:
            result[record.id] = (times[record.id][0], now)
    return result
