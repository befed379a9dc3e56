"""Refunds of payments (issue 19): a refund's parts and the moves between their states.

Pure: no I/O, no framework. A refund gives back money of paid payments, never of an
order as such: it is written as one part per payment it takes money from, part ``n`` of
refund ``R`` having the id ``R.n``. A part is ``refunding`` until the money moved
(``refunded``) or was refused for good (``failed``, which gives its reservation back).
The rules on how much may be refunded are the ledger's (``Ledger.refund``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from qrpay.eda.moves import MoveRefused
from qrpay.eda.schemas import RefundState
from qrpay.kernel.money import format_amount

REFUNDING, REFUNDED, FAILED = RefundState.REFUNDING, RefundState.REFUNDED, RefundState.FAILED

ALLOWED_REFUND_MOVES: frozenset[tuple[RefundState, RefundState]] = frozenset(
    {
        (REFUNDING, REFUNDED),
        (REFUNDING, FAILED),
    }
)


def part_id(refund_id: str, n: int) -> str:
    return f"{refund_id}.{n}"


class RefundMoveRefused(MoveRefused[RefundState]):
    """A move the table forbids, e.g. failing a part that was refunded."""


@dataclass(frozen=True, slots=True)
class RefundPart:
    refund_id: str
    n: int
    payment_id: str
    amount: Decimal  # of the payment's bill part
    tip: Decimal
    state: RefundState
    # The digest of the refund's request (``Refund.digest``): the same on every part.
    request_hash: str

    @property
    def id(self) -> str:
        return part_id(self.refund_id, self.n)

    @property
    def reserves(self) -> bool:
        """Counts against what the payment has left to refund."""
        return self.state != FAILED


@dataclass(frozen=True, slots=True)
class Refund:
    """What a caller asked: ``amount`` and ``tip`` of one payment, or spread over the paid
    ones when ``payment_id`` is None."""

    refund_id: str
    amount: Decimal
    tip: Decimal
    payment_id: str | None
    digest: str

    @classmethod
    def of(
        cls,
        refund_id: str,
        amount: Decimal,
        tip: Decimal,
        payment_id: str | None,
        currency: str,
        caller_hash: str | None = None,
    ) -> Refund:
        """The request with its digest: of the amounts as the currency writes them ("100"
        and "100.00" are one request), the payment, and the caller's own digest if any."""
        text = "\n".join(
            (
                format_amount(amount, currency),
                format_amount(tip, currency),
                payment_id or "",
                caller_hash or "",
            )
        )
        digest = hashlib.sha256(text.encode()).hexdigest()
        return cls(refund_id, amount, tip, payment_id, digest)
