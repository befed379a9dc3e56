"""The cashback ledger's rules: one accrual per order, exact sums per currency.

Pure: no I/O, no framework. Amounts are ``Decimal`` here and canonical decimal
strings (``"0.10"``) on the wire and in the table, never floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from qrpay.kernel.money import format_amount, parse_amount


def canonical_amount(text: str, currency: str) -> str:
    """``"0.1"`` and ``"0.10"`` are one amount; it is stored as ``"0.10"``."""
    return format_amount(parse_amount(text, currency), currency)


@dataclass(frozen=True, slots=True)
class Accrual:
    order_id: str
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


def balances(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Exact per-currency sums of ``(currency, amount)`` pairs, printed canonically, sorted."""
    totals: dict[str, Decimal] = {}
    for currency, amount in entries:
        totals[currency] = totals.get(currency, Decimal(0)) + parse_amount(amount, currency)
    return {currency: format_amount(totals[currency], currency) for currency in sorted(totals)}
