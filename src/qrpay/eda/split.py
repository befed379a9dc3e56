"""Shares of one bill: what is paid, what is held, what is left, and what a guest may take.

Pure: no I/O, no framework. At a table several guests pay one bill, each a share with its
own hold and clear. The order of record keeps the shares; this module decides whether one
more fits. The rules (issue 12):

- a share is never more than what is left (the total less the shares paid or held);
- an item (a bill line, by its position) belongs to at most one share that is paid or held;
- an equal share of N is the total over N rounded down to the currency's minor unit, and the
  share that leaves only that rounding's remainder behind takes it too, so N equal shares
  add up to the total exactly;
- items (the lines with a positive amount) are priced at their line amount scaled by
  total / sum of items, so a discount line or a total that differs from the lines is spread
  over them, and the share that takes the last untaken items pays everything left;
- a replacement bill may not be below what is paid or held, nor change a taken item.

A released share (its hold given back) frees its amount and its items.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from qrpay.eda.schemas import ShareState
from qrpay.kernel.errors import Conflict, InvalidInput
from qrpay.kernel.money import minor_units, quantize
from qrpay.kernel.schemas import Bill

HOLDING, CLEARING, ROLLING_BACK = ShareState.HOLDING, ShareState.CLEARING, ShareState.ROLLING_BACK
PAID, RELEASED = ShareState.PAID, ShareState.RELEASED

ALLOWED_SHARE_MOVES: frozenset[tuple[ShareState, ShareState]] = frozenset(
    {
        (HOLDING, CLEARING),
        (HOLDING, ROLLING_BACK),
        (HOLDING, RELEASED),  # the hold failed
        (ROLLING_BACK, RELEASED),
        # A succeeded clear is a fact about money: it completes the share from any phase
        # still holding money (the fence in transactions keeps it from meeting a rollback).
        (HOLDING, PAID),
        (CLEARING, PAID),
        (ROLLING_BACK, PAID),
    }
)


class ShareMoveRefused(Exception):
    """A move the table forbids, e.g. paying a share already given back."""

    def __init__(self, share_id: str, current: ShareState, to: ShareState) -> None:
        super().__init__(f"share {share_id}: {current} -> {to}")
        self.current = current
        self.to = to


class SplitCode(StrEnum):
    NOTHING_LEFT = "nothing_left"
    AMOUNT_EXCEEDS_LEFT = "amount_exceeds_left"
    ITEM_TAKEN = "item_taken"
    UNKNOWN_ITEM = "unknown_item"
    ITEM_NOT_PAYABLE = "item_not_payable"
    INVALID_PARTS = "invalid_parts"
    INVALID_SHARE_AMOUNT = "invalid_share_amount"
    BILL_BELOW_PAID = "bill_below_paid"
    TAKEN_ITEM_CHANGED = "taken_item_changed"


# Enough parts for any table; more is a typo, not a party.
MAX_PARTS = 50


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    amount: Decimal  # the bill part, tip excluded
    tip: Decimal
    items: frozenset[int]
    state: ShareState

    @property
    def reserves(self) -> bool:
        return self.state != RELEASED


@dataclass(frozen=True, slots=True)
class Ledger:
    """One bill and its shares; every share that fits was admitted by ``admit``."""

    bill: Bill
    shares: tuple[Share, ...] = ()

    @property
    def currency(self) -> str:
        return self.bill.currency

    @property
    def total(self) -> Decimal:
        return self.bill.total

    @property
    def paid(self) -> Decimal:
        return sum((s.amount for s in self.shares if s.state == PAID), Decimal(0))

    @property
    def held(self) -> Decimal:
        """Reserved by shares still under way."""
        return sum((s.amount for s in self.shares if s.state not in (PAID, RELEASED)), Decimal(0))

    @property
    def tips(self) -> Decimal:
        return sum((s.tip for s in self.shares if s.state == PAID), Decimal(0))

    @property
    def under_way(self) -> bool:
        return any(s.state not in (PAID, RELEASED) for s in self.shares)

    @property
    def left(self) -> Decimal:
        return self.total - self.paid - self.held

    @property
    def settled(self) -> bool:
        """Fully paid: the order is PAYED."""
        return self.paid >= self.total

    def taken_items(self) -> frozenset[int]:
        return frozenset(i for s in self.shares if s.reserves for i in s.items)

    def payable_items(self) -> frozenset[int]:
        """Lines a guest may pick: those with a positive amount."""
        return frozenset(i for i, e in enumerate(self.bill.elements) if Decimal(e.amount) > 0)

    def share(self, share_id: str) -> Share | None:
        return next((s for s in self.shares if s.id == share_id), None)

    # --- what a guest's choice costs ----------------------------------------------------

    def everything_left(self) -> Decimal:
        self._something_left()
        return self.left

    def equal_share(self, parts: int) -> Decimal:
        if not 2 <= parts <= MAX_PARTS:
            raise InvalidInput(
                f"an equal share splits the bill in 2..{MAX_PARTS} parts",
                code=SplitCode.INVALID_PARTS,
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

    def items_amount(self, items: Iterable[int]) -> Decimal:
        chosen = frozenset(items)
        if not chosen:
            raise InvalidInput("choose at least one item", code=SplitCode.UNKNOWN_ITEM)
        count = len(self.bill.elements)
        unknown = sorted(i for i in chosen if not 0 <= i < count)
        if unknown:
            raise InvalidInput(f"no items {unknown} on this bill", code=SplitCode.UNKNOWN_ITEM)
        not_payable = sorted(chosen - self.payable_items())
        if not_payable:
            raise InvalidInput(
                f"lines {not_payable} are not items one can pay for",
                code=SplitCode.ITEM_NOT_PAYABLE,
            )
        taken = sorted(chosen & self.taken_items())
        if taken:
            raise Conflict(
                f"items {taken} are paid or being paid by another guest",
                code=SplitCode.ITEM_TAKEN,
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
                code=SplitCode.INVALID_SHARE_AMOUNT,
            )
        self._something_left()
        return self._fits(amount)

    # --- changes ------------------------------------------------------------------------

    def admit(self, share: Share) -> Ledger:
        """The ledger with ``share`` holding; Conflict if it no longer fits (a racing guest)."""
        if share.state != HOLDING or share.amount <= 0:
            raise ValueError("a share is admitted holding, with a positive amount")
        taken = sorted(share.items & self.taken_items())
        if taken:
            raise Conflict(
                f"items {taken} are paid or being paid by another guest",
                code=SplitCode.ITEM_TAKEN,
            )
        self._something_left()
        self._fits(share.amount)
        return replace(self, shares=(*self.shares, share))

    def move(self, share_id: str, to: ShareState) -> Ledger:
        """The share moved to ``to``; the same ledger when it is there already (a replay)."""
        current = self.share(share_id)
        if current is None:
            raise KeyError(share_id)
        if current.state == to:
            return self
        if (current.state, to) not in ALLOWED_SHARE_MOVES:
            raise ShareMoveRefused(share_id, current.state, to)
        shares = tuple(replace(s, state=to) if s.id == share_id else s for s in self.shares)
        return replace(self, shares=shares)

    def replace_bill(self, bill: Bill) -> Ledger:
        """A new bill from the POS, refused if it drops below what is reserved or changes a
        taken item (the guest who paid for it must still find it on the bill)."""
        reserved = self.paid + self.held
        if bill.total < reserved:
            raise Conflict(
                f"the new bill is below the {reserved} already paid or being paid",
                code=SplitCode.BILL_BELOW_PAID,
            )
        for index in sorted(self.taken_items()):
            old = self.bill.elements[index]
            if index >= len(bill.elements) or _line(bill, index) != _line(self.bill, index):
                raise Conflict(
                    f"item {index} ({old.name}) is paid or being paid and cannot change",
                    code=SplitCode.TAKEN_ITEM_CHANGED,
                )
        return replace(self, bill=bill)

    # --- rules --------------------------------------------------------------------------

    def _something_left(self) -> None:
        if self.left <= 0:
            raise Conflict("nothing is left to pay on this bill", code=SplitCode.NOTHING_LEFT)

    def _fits(self, amount: Decimal) -> Decimal:
        if amount > self.left:
            raise Conflict(
                f"{amount} is more than the {self.left} left to pay",
                code=SplitCode.AMOUNT_EXCEEDS_LEFT,
            )
        return amount


def _minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _line(bill: Bill, index: int) -> tuple[str, Decimal]:
    element = bill.elements[index]
    return element.name, Decimal(element.amount)
