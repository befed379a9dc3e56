"""The cashback ledger's rules: one accrual per key, reversals of it, a balance never below
zero and the debt that keeps, exact sums per currency.

Pure: no I/O, no framework. Amounts are ``Decimal`` here and canonical decimal
strings (``"0.10"``) on the wire and in the table, never floats.

A user's ledger in one currency (``Account``), from its entries:

- an accrual adds its amount, as payments-eda sent it;
- a reversal takes back what the balance has, at most its amount (``taken``), and what
  it could not take is owed (``debt``);
- the next accrual pays the debt off first: a repayment of ``min(debt, accrual)``.

balance = accruals - taken - repayments, and debt = owed - repayments; neither goes below
zero, and while a debt is open the balance is zero.

Nothing in this stand-in spends a balance, so on its own it always covers what is left of
each accrual and a reversal takes it all; debt arises once a balance has been spent (as a
real cashback's is), and the rules hold for any balance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from qrpay.cashback.schemas import CashbackCode, EntryKind
from qrpay.kernel.errors import Conflict, InvalidInput
from qrpay.kernel.money import format_amount, parse_amount

ZERO = Decimal(0)


def canonical_amount(text: str, currency: str) -> str:
    """``"0.1"`` and ``"0.10"`` are one amount; it is stored as ``"0.10"``."""
    return format_amount(parse_amount(text, currency), currency)


@dataclass(frozen=True, slots=True)
class Accrual:
    order_id: str  # the accrual's key: ``<order>`` or ``<order>.<invoice>``
    user_id: str
    amount: str  # canonical for the currency
    currency: str
    source: str
    created_at: datetime

    @classmethod
    def new(
        cls,
        *,
        order_id: str,
        user_id: str,
        amount: str,
        currency: str,
        source: str,
        now: datetime,
    ) -> Accrual:
        return cls(
            order_id=order_id,
            user_id=user_id,
            amount=canonical_amount(amount, currency),
            currency=currency,
            source=source,
            created_at=now,
        )

    @property
    def value(self) -> Decimal:
        return parse_amount(self.amount, self.currency)

    def same_as(self, other: Accrual) -> bool:
        """A repeat of the same accrual: same user, amount and currency (the source is a label)."""
        return (
            self.order_id == other.order_id
            and self.user_id == other.user_id
            and self.currency == other.currency
            and self.value == other.value
        )


@dataclass(frozen=True, slots=True)
class Reversal:
    """Cashback of one accrual given back (a refund), at most once per ``reversal_id``."""

    reversal_id: str
    accrual_key: str
    user_id: str
    amount: str  # canonical; taken + debt
    currency: str
    taken: str  # what came off the balance
    debt: str  # what the balance did not have: owed until accruals repay it
    created_at: datetime

    @property
    def value(self) -> Decimal:
        return parse_amount(self.amount, self.currency)

    @property
    def owes(self) -> bool:
        """Whether the balance did not have all of it: a debt was recorded."""
        return parse_amount(self.debt, self.currency) > 0

    def same_request(self, accrual_key: str, amount: str, currency: str) -> bool:
        """Whether a request for this reversal's id asks for this reversal (a repeat)."""
        return (
            self.accrual_key == accrual_key
            and self.currency == currency
            and self.value == parse_amount(amount, currency)
        )


@dataclass(frozen=True, slots=True)
class Repayment:
    """The part of an accrual that paid the user's debt off (at most one per accrual)."""

    accrual_key: str
    user_id: str
    amount: str  # canonical
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    """A user's cashback in one currency, summed from its entries."""

    currency: str
    accrued: Decimal = ZERO
    taken: Decimal = ZERO
    owed: Decimal = ZERO
    repaid: Decimal = ZERO

    @classmethod
    def of(
        cls,
        currency: str,
        accruals: Iterable[Accrual],
        reversals: Iterable[Reversal],
        repayments: Iterable[Repayment],
    ) -> Account:
        """The account from the user's entries (those in other currencies are left out)."""
        reversed_here = [r for r in reversals if r.currency == currency]
        return cls(
            currency=currency,
            accrued=_sum(a.amount for a in accruals if a.currency == currency),
            taken=_sum(r.taken for r in reversed_here),
            owed=_sum(r.debt for r in reversed_here),
            repaid=_sum(p.amount for p in repayments if p.currency == currency),
        )

    @property
    def balance(self) -> Decimal:
        return self.accrued - self.taken - self.repaid

    @property
    def debt(self) -> Decimal:
        return self.owed - self.repaid

    def take(self, value: Decimal) -> tuple[Decimal, Decimal]:
        """What a reversal of ``value`` takes from the balance, and what it leaves owed."""
        taken = min(max(self.balance, ZERO), value)
        return taken, value - taken

    def repaid_by(self, value: Decimal) -> Decimal:
        """What of a new accrual of ``value`` pays the debt off: ``min(debt, value)``."""
        return max(min(self.debt, value), ZERO)


def _sum(amounts: Iterable[str]) -> Decimal:
    # Amounts from the table are canonical; Decimal adds them exactly.
    return sum((Decimal(a) for a in amounts), ZERO)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a user's history."""

    kind: EntryKind
    accrual_key: str
    currency: str
    amount: str
    created_at: datetime
    reversal_id: str | None = None
    taken: str | None = None
    debt: str | None = None
    source: str | None = None


# Of entries made at the same instant: an accrual before the repayment it made.
_RANK = {EntryKind.ACCRUAL: 0, EntryKind.REPAYMENT: 1, EntryKind.REVERSAL: 2}


@dataclass(frozen=True, slots=True)
class Ledger:
    """The entries of one user (or of one order's accruals), each kind oldest first."""

    accruals: Sequence[Accrual] = ()
    reversals: Sequence[Reversal] = ()
    repayments: Sequence[Repayment] = ()

    def account(self, currency: str) -> Account:
        return Account.of(currency, self.accruals, self.reversals, self.repayments)

    def accounts(self) -> dict[str, Account]:
        """The accounts by currency, sorted: every currency with an entry."""
        found = {
            *(a.currency for a in self.accruals),
            *(r.currency for r in self.reversals),
            *(p.currency for p in self.repayments),
        }
        return {currency: self.account(currency) for currency in sorted(found)}

    def reverse(
        self, accrual: Accrual, *, reversal_id: str, amount: str, currency: str, now: datetime
    ) -> Reversal:
        """A new reversal of ``accrual``, this ledger being its user's: it takes what the
        balance in its currency has, at most ``amount``, and the rest is debt.

        Refused: another currency than the accrual's (``currency_mismatch``), a
        non-positive amount, and reversals of one accrual summing above it
        (``reversal_exceeds_accrual``).
        """
        if currency != accrual.currency:
            raise InvalidInput(
                f"the accrual is in {accrual.currency}, not {currency}",
                code=CashbackCode.CURRENCY_MISMATCH,
            )
        value = parse_amount(amount, currency)
        if value <= 0:
            raise InvalidInput("a reversal must be greater than zero", code="amount_not_positive")
        earlier = (r.value for r in self.reversals if r.accrual_key == accrual.order_id)
        left = accrual.value - sum(earlier, ZERO)
        if value > left:
            raise Conflict(
                f"{format_amount(left, currency)} {currency} of the accrual is left to "
                f"reverse, less than {format_amount(value, currency)}",
                code=CashbackCode.REVERSAL_EXCEEDS_ACCRUAL,
            )
        taken, debt = self.account(currency).take(value)
        return Reversal(
            reversal_id=reversal_id,
            accrual_key=accrual.order_id,
            user_id=accrual.user_id,
            amount=format_amount(value, currency),
            currency=currency,
            taken=format_amount(taken, currency),
            debt=format_amount(debt, currency),
            created_at=now,
        )

    def repayment(self, accrual: Accrual, now: datetime) -> Repayment | None:
        """What of a new ``accrual`` pays its user's debt off, this ledger being the user's
        (with or without the accrual: the debt is the same): ``min(debt, accrual)``; None
        without a debt."""
        repaid = self.account(accrual.currency).repaid_by(accrual.value)
        if repaid == 0:
            return None
        return Repayment(
            accrual_key=accrual.order_id,
            user_id=accrual.user_id,
            amount=format_amount(repaid, accrual.currency),
            currency=accrual.currency,
            created_at=now,
        )

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        entries = [
            *(
                Entry(
                    EntryKind.ACCRUAL,
                    a.order_id,
                    a.currency,
                    a.amount,
                    a.created_at,
                    source=a.source,
                )
                for a in self.accruals
            ),
            *(
                Entry(
                    EntryKind.REVERSAL,
                    r.accrual_key,
                    r.currency,
                    r.amount,
                    r.created_at,
                    reversal_id=r.reversal_id,
                    taken=r.taken,
                    debt=r.debt,
                )
                for r in self.reversals
            ),
            *(
                Entry(EntryKind.REPAYMENT, p.accrual_key, p.currency, p.amount, p.created_at)
                for p in self.repayments
            ),
        ]
        return sorted(
            entries,
            key=lambda e: (e.created_at, _RANK[e.kind], e.accrual_key, e.reversal_id or ""),
        )
