"""A split bill's use cases: price a share, begin it, move it, and show the ledger.

Every change locks the order's row first (on SQLite the write transaction holds the
database), reads its shares, lets ``eda.split`` decide and writes the share with an order
version bump: two guests at once are decided one after the other, and the items' primary
key refuses an item taken twice even if a decision were wrong. The order's status moves to
PAYED when the shares cleared add up to the bill; while a share is under way or paid, the
TTL never closes the order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from qrpay.eda.domain import ENDED, Order
from qrpay.eda.repository import OrderRepository
from qrpay.eda.schemas import EdaCode, OrderStatus, ShareChoice, ShareState, ShareWay
from qrpay.eda.service import ATTEMPTS, OrderService, _busy, _not_found
from qrpay.eda.split import Ledger, Share, ShareMoveRefused, SplitCode
from qrpay.eda.split_repository import ShareRepository, ShareTimes, shares_to_check
from qrpay.kernel.clock import wire_time
from qrpay.kernel.errors import Conflict, InvalidInput, NotFound
from qrpay.kernel.money import format_amount, parse_amount

HOLDING, CLEARING, ROLLING_BACK = ShareState.HOLDING, ShareState.CLEARING, ShareState.ROLLING_BACK
PAID, RELEASED = ShareState.PAID, ShareState.RELEASED


class _Lost(Exception):
    """The order changed under the decision: roll the transaction back and decide again."""


def price(ledger: Ledger, choice: ShareChoice) -> Decimal:
    """What ``choice`` costs on ``ledger`` now."""
    if choice.way == ShareWay.REST:
        return ledger.everything_left()
    if choice.way == ShareWay.EQUAL:
        if choice.parts is None:
            raise InvalidInput("an equal share names its parts", code=SplitCode.INVALID_PARTS)
        return ledger.equal_share(choice.parts)
    if choice.way == ShareWay.ITEMS:
        return ledger.items_amount(choice.items)
    if choice.amount is None:
        raise InvalidInput("a custom share names its amount", code=SplitCode.INVALID_SHARE_AMOUNT)
    return ledger.custom_amount(parse_amount(choice.amount, ledger.currency))


def _check_open(order: Order, currency: str, bill_version: int | None) -> None:
    if order.status == OrderStatus.PAYMENT_IN_PROGRESS:
        raise Conflict("a payment of the whole bill is under way", code=EdaCode.PAYMENT_IN_PROGRESS)
    if order.status == OrderStatus.PAYED:
        raise Conflict("the order is already paid", code=EdaCode.ALREADY_PAID)
    if order.status in ENDED:
        raise Conflict("the order is closed", code=EdaCode.ORDER_CLOSED)
    if currency != order.bill.currency or (
        bill_version is not None and bill_version != order.bill_version
    ):
        raise Conflict("the bill has changed", code=EdaCode.BILL_CHANGED)


def _refused(exc: ShareMoveRefused) -> Conflict:
    if exc.current == RELEASED:
        return Conflict("the share was given back", code=EdaCode.SHARE_RELEASED)
    if exc.current == PAID:
        return Conflict("the share is paid", code=EdaCode.ALREADY_PAID)
    if exc.current == CLEARING:
        return Conflict("the share is being cleared", code=EdaCode.PAYMENT_CLEARING)
    return Conflict("the share is being rolled back", code=EdaCode.PAYMENT_ROLLING_BACK)


def ledger_wire(order: Order, ledger: Ledger, times: ShareTimes) -> dict[str, Any]:
    currency = order.bill.currency

    def money(value: Decimal) -> str:
        return format_amount(value, currency)

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
        "shares": [
            {
                "share_id": s.id,
                "amount": money(s.amount),
                "tip": money(s.tip),
                "items": sorted(s.items),
                "state": s.state.value,
                "created_at": wire_time(times[s.id][0]),
                "updated_at": wire_time(times[s.id][1]),
            }
            for s in ledger.shares
        ],
    }


class SplitService:
    def __init__(self, orders: OrderService) -> None:
        self.orders = orders
        self.db = orders.db
        self.clock = orders.clock

    async def ledger(self, order_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            order = await OrderRepository(session).get(order_id)
            if order is None:
                raise _not_found(order_id)
            shares, times = await ShareRepository(session).of_order(order_id)
        return ledger_wire(order, Ledger(order.bill, shares), times)

    async def to_check(self, updated_before: datetime, limit: int) -> list[dict[str, Any]]:
        return await shares_to_check(self.db, updated_before, limit)

    async def quote(self, order_id: str, choice: ShareChoice) -> dict[str, str]:
        """The price of ``choice`` now, reserving nothing."""
        async with self.db.read() as session:
            order = await OrderRepository(session).get(order_id)
            if order is None:
                raise _not_found(order_id)
            shares, _ = await ShareRepository(session).of_order(order_id)
        _check_open(order, order.bill.currency, None)
        ledger = Ledger(order.bill, shares)
        currency = order.bill.currency
        return {
            "amount": format_amount(price(ledger, choice), currency),
            "left": format_amount(ledger.left, currency),
        }

    async def start(
        self,
        order_id: str,
        share_id: str,
        choice: ShareChoice,
        *,
        amount: str,
        tip: str,
        currency: str,
        bill_version: int | None = None,
    ) -> dict[str, Any]:
        """Reserve the share at the price the guest saw, or refuse (409) if it changed."""
        agreed = parse_amount(amount, currency)
        tip_value = parse_amount(tip, currency)

        async def begin(order: Order, ledger: Ledger, repo: ShareRepository) -> Order:
            replay = ledger.share(share_id)
            if replay is not None:
                if replay.amount != agreed or replay.items != frozenset(choice.items):
                    raise Conflict(
                        "this share id began with another choice", code=EdaCode.SHARE_MISMATCH
                    )
                return order
            _check_open(order, currency, bill_version)
            now_price = price(ledger, choice)
            if now_price != agreed:
                raise Conflict(
                    f"the share now costs {format_amount(now_price, currency)}: another guest "
                    "paid meanwhile",
                    code=EdaCode.SHARE_PRICE_CHANGED,
                )
            share = Share(share_id, agreed, tip_value, frozenset(choice.items), HOLDING)
            ledger.admit(share)  # refuses a share that does not fit
            try:
                await repo.add(order_id, share, currency, self.clock.now())
            except IntegrityError:
                raise Conflict(
                    "an item is paid or being paid by another guest", code=SplitCode.ITEM_TAKEN
                ) from None
            return order.share_changed(self.clock.now())

        return await self._change(order_id, begin)

    async def move(self, order_id: str, share_id: str, to: ShareState) -> dict[str, Any]:
        """The share's hold claimed by its clear or its rollback, given back, or cleared."""

        async def step(order: Order, ledger: Ledger, repo: ShareRepository) -> Order:
            current = ledger.share(share_id)
            if current is None:
                raise NotFound(f"no share {share_id[:64]!r}", code=EdaCode.SHARE_NOT_FOUND)
            try:
                moved = ledger.move(share_id, to)
            except ShareMoveRefused as exc:
                raise _refused(exc) from None
            if moved is ledger:
                return order
            if not await repo.move(current, to, self.clock.now()):
                raise _Lost
            now = self.clock.now()
            if to == PAID and moved.settled and order.status == OrderStatus.WAITING:
                return order.paid_by_shares(now)
            if order.status == OrderStatus.WAITING:
                return order.share_changed(now)
            return order  # a late clear after the order was settled: nothing to show

        return await self._change(order_id, step)

    async def _change(
        self,
        order_id: str,
        decide: Callable[[Order, Ledger, ShareRepository], Awaitable[Order]],
    ) -> dict[str, Any]:
        for _ in range(ATTEMPTS):
            try:
                async with self.db.write() as session:
                    orders = OrderRepository(session)
                    order = await orders.get(order_id, for_update=True)
                    if order is None:
                        raise _not_found(order_id)
                    repo = ShareRepository(session)
                    shares, _ = await repo.of_order(order_id)
                    changed = await decide(order, Ledger(order.bill, shares), repo)
                    if changed is not order and not await orders.save(order, changed):
                        raise _Lost
                    written, times = await repo.of_order(order_id)
            except _Lost:
                continue
            if changed is not order:
                self.orders.changed.fire()
                if changed.status == OrderStatus.PAYED:
                    self.orders.metrics.paid.inc()
            return ledger_wire(changed, Ledger(changed.bill, written), times)
        raise _busy()
