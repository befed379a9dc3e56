"""An order's payments: what is paid, what is held, what is left, and what a guest may take.

Pure: no I/O, no framework. Every payment is a share of the bill (issue 18): paying the
whole bill is the share of everything left. The rules:

- a payment is never more than what is left (the total less what is paid or held);
- an item (a bill line, by its position) belongs to at most one payment that is paid or held;
- an equal share of N is the total over N rounded down to the currency's minor unit, and the
  share that leaves only that rounding's remainder behind takes it too, so N equal shares
  add up to the total exactly;
- items (the lines with a positive amount) are priced at their line amount scaled by
  total / sum of items, so a discount line or a total that differs from the lines is spread
  over them, and the payment that takes the last untaken items pays everything left;
- a replacement bill may not be below what is paid or held, nor change a taken item, nor
  change the currency once the order has any payment;
- the order is PAYED exactly when its cleared payments cover the total.

A released payment (its hold given back) frees its amount and its items.

Refunds (issue 19, ``eda.refunds``) give back money of paid payments; they leave ``paid``
and what is left to pay as they are (a refund never reopens the bill). Of each payment,
the parts refunded and being refunded together never exceed its amount, nor its tip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal

from qrpay.eda.moves import MoveRefused
from qrpay.eda.refunds import (
    ALLOWED_REFUND_MOVES,
    REFUNDED,
    REFUNDING,
    Refund,
    RefundMoveRefused,
    RefundPart,
)
from qrpay.eda.schemas import Bill, EdaCode, LedgerCode, PaymentState, RefundState
from qrpay.kernel.errors import Conflict, InvalidInput, NotFound
from qrpay.kernel.money import minor_units, quantize

HOLDING, ROLLING_BACK = PaymentState.HOLDING, PaymentState.ROLLING_BACK
# Only payments made before issue 18 are CLEARING: an owner-started clear claimed them.
CLEARING = PaymentState.CLEARING
PAID, RELEASED = PaymentState.PAID, PaymentState.RELEASED
LIVE = frozenset({HOLDING, CLEARING, ROLLING_BACK})

ALLOWED_PAYMENT_MOVES: frozenset[tuple[PaymentState, PaymentState]] = frozenset(
    {
        (HOLDING, ROLLING_BACK),
        (HOLDING, RELEASED),  # the hold failed
        (ROLLING_BACK, RELEASED),
        # A succeeded clear is a fact about money: it completes the payment from any state
        # still holding money (the fence in transactions keeps it from meeting a rollback).
        (HOLDING, PAID),
        (CLEARING, PAID),
        (ROLLING_BACK, PAID),
    }
)

# Enough parts for any table; more is a typo, not a party.
MAX_PARTS = 50


class PaymentMoveRefused(MoveRefused[PaymentState]):
    """A move the table forbids, e.g. paying a payment already given back."""


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    amount: Decimal  # the bill part, tip excluded
    tip: Decimal
    items: frozenset[int]
    state: PaymentState
    # The invoice in transactions: the payment's own id, or the order's for a whole-bill
    # payment made before issue 18.
    invoice_id: str
    # The guest's idempotency token and a digest of the request it came with.
    token: str | None = None
    request_hash: str | None = None
    # Its place among the order's payments in the order they cleared (1, 2, ...): what
    # shares the order's cashback cap, never a clock.
    paid_seq: int | None = None

    @property
    def reserves(self) -> bool:
        return self.state != RELEASED

    @property
    def live(self) -> bool:
        return self.state in LIVE


@dataclass(frozen=True, slots=True)
class Ledger:
    """One bill and its payments; every payment in it was admitted by ``admit``."""

    bill: Bill
    payments: tuple[Payment, ...] = ()
    # Every refund part of the order's payments, in the order they were made.
    refunds: tuple[RefundPart, ...] = ()

    @property
    def currency(self) -> str:
        return self.bill.currency

    @property
    def total(self) -> Decimal:
        return self.bill.total

    @property
    def paid(self) -> Decimal:
        return sum((p.amount for p in self.payments if p.state == PAID), Decimal(0))

    @property
    def held(self) -> Decimal:
        """Reserved by payments still under way."""
        return sum((p.amount for p in self.payments if p.live), Decimal(0))

    @property
    def tips(self) -> Decimal:
        return sum((p.tip for p in self.payments if p.state == PAID), Decimal(0))

    @property
    def under_way(self) -> bool:
        return any(p.live for p in self.payments)

    @property
    def left(self) -> Decimal:
        return self.total - self.paid - self.held

    @property
    def settled(self) -> bool:
        """Fully paid: the order is PAYED."""
        return self.paid >= self.total

    @property
    def covered(self) -> bool:
        """Nothing is left for another guest: paid, or held by payments under way."""
        return self.left <= 0

    def taken_items(self) -> frozenset[int]:
        return frozenset(i for p in self.payments if p.reserves for i in p.items)

    def payable_items(self) -> frozenset[int]:
        """Lines a guest may pick: those with a positive amount."""
        return frozenset(i for i, e in enumerate(self.bill.elements) if Decimal(e.amount) > 0)

    def payment(self, payment_id: str) -> Payment | None:
        return next((p for p in self.payments if p.id == payment_id), None)

    def next_paid_seq(self) -> int:
        return 1 + max((p.paid_seq or 0 for p in self.payments), default=0)

    # --- refunds ------------------------------------------------------------------------

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds if r.state == REFUNDED), Decimal(0))

    @property
    def refunded_tips(self) -> Decimal:
        return sum((r.tip for r in self.refunds if r.state == REFUNDED), Decimal(0))

    @property
    def refunded_fully(self) -> bool:
        """Something was paid, and all of it, amounts and tips, is refunded."""
        paid, tips = self.paid, self.tips
        return paid + tips > 0 and self.refunded >= paid and self.refunded_tips >= tips

    def refund_part(self, part_id: str) -> RefundPart | None:
        return next((r for r in self.refunds if r.id == part_id), None)

    def refund_parts(self, refund_id: str) -> tuple[RefundPart, ...]:
        return tuple(sorted((r for r in self.refunds if r.refund_id == refund_id), key=_n))

    def refunded_of(self, payment_id: str) -> tuple[Decimal, Decimal]:
        """The amount and tip refunded of a payment (succeeded parts)."""
        done = [r for r in self.refunds if r.payment_id == payment_id and r.state == REFUNDED]
        return sum((r.amount for r in done), Decimal(0)), sum((r.tip for r in done), Decimal(0))

    def refundable(self, payment: Payment) -> tuple[Decimal, Decimal]:
        """The amount and tip of a paid payment no refund has taken or is taking yet."""
        taken = [r for r in self.refunds if r.payment_id == payment.id and r.reserves]
        return (
            payment.amount - sum((r.amount for r in taken), Decimal(0)),
            payment.tip - sum((r.tip for r in taken), Decimal(0)),
        )

    def refund(self, request: Refund) -> tuple[Ledger, tuple[RefundPart, ...], bool]:
        """The ledger with the refund's parts ``refunding``, the parts, and whether the
        request repeated an earlier one (then the ledger as it is and the earlier parts)."""
        earlier = self.refund_parts(request.refund_id)
        if earlier:
            if earlier[0].request_hash != request.digest:
                raise Conflict(
                    "this refund id came with another request", code=EdaCode.REFUND_ID_REUSED
                )
            return self, earlier, True
        if request.amount < 0 or request.tip < 0 or request.amount + request.tip <= 0:
            raise InvalidInput(
                "a refund gives back a positive amount or tip, neither negative",
                code=EdaCode.INVALID_REFUND_AMOUNT,
            )
        if request.payment_id is None:
            takes = self._spread(request.amount, request.tip)
        else:
            takes = [self._of_one(request.payment_id, request.amount, request.tip)]
        parts = tuple(
            RefundPart(
                refund_id=request.refund_id,
                n=n,
                payment_id=payment_id,
                amount=amount,
                tip=tip,
                state=REFUNDING,
                request_hash=request.digest,
            )
            for n, (payment_id, amount, tip) in enumerate(takes, start=1)
        )
        return replace(self, refunds=(*self.refunds, *parts)), parts, False

    def move_refund(self, part_id: str, to: RefundState) -> Ledger:
        """The part moved to ``to``; the same ledger when it is there already (a replay)."""
        current = self.refund_part(part_id)
        if current is None:
            raise KeyError(part_id)
        what = f"refund part {part_id}"
        if not RefundMoveRefused.check(what, current.state, to, ALLOWED_REFUND_MOVES):
            return self
        moved = replace(current, state=to)
        return replace(self, refunds=tuple(moved if r.id == part_id else r for r in self.refunds))

    def _of_one(
        self, payment_id: str, amount: Decimal, tip: Decimal
    ) -> tuple[str, Decimal, Decimal]:
        payment = self.payment(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id[:64]!r}", code=EdaCode.PAYMENT_NOT_FOUND)
        if payment.state != PAID:
            raise Conflict(
                f"the payment is {payment.state}: only a paid one is refunded",
                code=EdaCode.PAYMENT_NOT_REFUNDABLE,
            )
        amount_left, tip_left = self.refundable(payment)
        _check_fits(amount, amount_left, tip, tip_left)
        return payment.id, amount, tip

    def _spread(self, amount: Decimal, tip: Decimal) -> list[tuple[str, Decimal, Decimal]]:
        """Over the paid payments, newest paid first, each up to what it has left; amount
        and tip each on its own."""
        paid = sorted(
            (p for p in self.payments if p.state == PAID),
            key=lambda p: p.paid_seq or 0,
            reverse=True,
        )
        if not paid:
            raise Conflict(
                "the order has no paid payment to refund", code=EdaCode.PAYMENT_NOT_REFUNDABLE
            )
        left = [(p.id, *self.refundable(p)) for p in paid]
        _check_fits(
            amount,
            sum((a for _, a, _ in left), Decimal(0)),
            tip,
            sum((t for _, _, t in left), Decimal(0)),
        )
        takes = []
        for payment_id, amount_left, tip_left in left:
            a, t = min(amount, amount_left), min(tip, tip_left)
            if a > 0 or t > 0:
                takes.append((payment_id, a, t))
            amount, tip = amount - a, tip - t
        return takes

    # --- what a guest's choice costs ----------------------------------------------------

    def everything_left(self) -> Decimal:
        self._something_left()
        return self.left

    def equal_share(self, parts: int) -> Decimal:
        if not 2 <= parts <= MAX_PARTS:
            raise InvalidInput(
                f"an equal share splits the bill in 2..{MAX_PARTS} parts",
                code=LedgerCode.INVALID_PARTS,
            )
        self._something_left()
        unit = _minor_unit(self.currency)
        base = (self.total / parts).quantize(unit, rounding=ROUND_DOWN)
        remainder = self.total - base * parts
        # The last equal share also takes the rounding's remainder; a guest who asks for a
        # share of what is left after custom amounts does not.
        if self.left - base <= remainder:
            return self.left
        return base

    def check_items(self, items: Iterable[int]) -> frozenset[int]:
        """The chosen lines, each one on the bill and payable (400 otherwise)."""
        chosen = frozenset(items)
        if not chosen:
            raise InvalidInput("choose at least one item", code=LedgerCode.UNKNOWN_ITEM)
        count = len(self.bill.elements)
        unknown = sorted(i for i in chosen if not 0 <= i < count)
        if unknown:
            raise InvalidInput(f"no items {unknown} on this bill", code=LedgerCode.UNKNOWN_ITEM)
        not_payable = sorted(chosen - self.payable_items())
        if not_payable:
            raise InvalidInput(
                f"lines {not_payable} are not items one can pay for",
                code=LedgerCode.ITEM_NOT_PAYABLE,
            )
        return chosen

    def items_amount(self, items: Iterable[int]) -> Decimal:
        chosen = self.check_items(items)
        taken = sorted(chosen & self.taken_items())
        if taken:
            raise Conflict(
                f"items {taken} are paid or being paid by another guest",
                code=LedgerCode.ITEM_TAKEN,
            )
        self._something_left()
        if self.payable_items() <= self.taken_items() | chosen:
            return self.left
        items_sum = sum(
            (Decimal(self.bill.elements[i].amount) for i in self.payable_items()), Decimal(0)
        )
        price = sum((Decimal(self.bill.elements[i].amount) for i in chosen), Decimal(0))
        if items_sum != self.total:
            price = price * self.total / items_sum
        # A line cheaper than the discount spread over it still costs one minor unit.
        return self._fits(max(quantize(price, self.currency), _minor_unit(self.currency)))

    def custom_amount(self, amount: Decimal) -> Decimal:
        if amount <= 0 or amount != quantize(amount, self.currency):
            raise InvalidInput(
                "a share is a positive amount in the currency's minor units",
                code=LedgerCode.INVALID_SHARE_AMOUNT,
            )
        self._something_left()
        return self._fits(amount)

    # --- changes ------------------------------------------------------------------------

    def admit(self, payment: Payment) -> Ledger:
        """The ledger with ``payment`` holding; Conflict if it no longer fits (a racing guest)."""
        if payment.state != HOLDING or payment.amount <= 0:
            raise ValueError("a payment is admitted holding, with a positive amount")
        if payment.items:
            self.check_items(payment.items)
        taken = sorted(payment.items & self.taken_items())
        if taken:
            raise Conflict(
                f"items {taken} are paid or being paid by another guest",
                code=LedgerCode.ITEM_TAKEN,
            )
        self._something_left()
        self._fits(payment.amount)
        return replace(self, payments=(*self.payments, payment))

    def move(self, payment_id: str, to: PaymentState) -> Ledger:
        """The payment moved to ``to``; the same ledger when it is there already (a replay)."""
        current = self.payment(payment_id)
        if current is None:
            raise KeyError(payment_id)
        what = f"payment {payment_id}"
        if not PaymentMoveRefused.check(what, current.state, to, ALLOWED_PAYMENT_MOVES):
            return self
        seq = self.next_paid_seq() if to == PAID else current.paid_seq
        moved = replace(current, state=to, paid_seq=seq)
        return replace(
            self, payments=tuple(moved if p.id == payment_id else p for p in self.payments)
        )

    def replace_bill(self, bill: Bill) -> Ledger:
        """A new bill from the POS: refused if it changes the currency of an order with a
        payment, drops below what is reserved, or changes a taken item (the guest who paid
        for it must still find it on the bill)."""
        if self.payments and bill.currency != self.currency:
            raise Conflict(
                f"the order has payments in {self.currency}: its currency cannot change",
                code=LedgerCode.CURRENCY_LOCKED,
            )
        reserved = self.paid + self.held
        if bill.total < reserved:
            raise Conflict(
                f"the new bill is below the {reserved} already paid or being paid",
                code=LedgerCode.BILL_BELOW_PAID,
            )
        for index in sorted(self.taken_items()):
            if index >= len(bill.elements) or _line(bill, index) != _line(self.bill, index):
                raise Conflict(
                    f"item {index} is paid or being paid and cannot change",
                    code=LedgerCode.TAKEN_ITEM_CHANGED,
                )
        return replace(self, bill=bill)

    # --- rules --------------------------------------------------------------------------

    def _something_left(self) -> None:
        if self.left <= 0:
            raise Conflict("nothing is left to pay on this bill", code=LedgerCode.NOTHING_LEFT)

    def _fits(self, amount: Decimal) -> Decimal:
        if amount > self.left:
            raise Conflict(
                f"{amount} is more than the {self.left} left to pay",
                code=LedgerCode.AMOUNT_EXCEEDS_LEFT,
            )
        return amount


def _n(part: RefundPart) -> int:
    return part.n


def _check_fits(amount: Decimal, amount_left: Decimal, tip: Decimal, tip_left: Decimal) -> None:
    if amount > amount_left or tip > tip_left:
        raise Conflict(
            f"the refund of {amount} and tip {tip} is more than the {amount_left} and tip "
            f"{tip_left} left to refund",
            code=EdaCode.REFUND_EXCEEDS_PAID,
        )


def _minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _line(bill: Bill, index: int) -> tuple[str, Decimal]:
    element = bill.elements[index]
    return element.name, Decimal(element.amount)
