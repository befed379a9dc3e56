"""eda's payments built for unit tests of the ledger and the order."""

from __future__ import annotations

from decimal import Decimal

from qrpay.eda.ledger import Payment
from qrpay.eda.schemas import PaymentState


def payment(
    payment_id: str,
    amount: str,
    state: PaymentState = PaymentState.HOLDING,
    items: tuple[int, ...] = (),
) -> Payment:
    """A payment of ``amount`` (no tip) invoiced under its own id."""
    return Payment(
        id=payment_id,
        amount=Decimal(amount),
        tip=Decimal(0),
        items=frozenset(items),
        state=state,
        invoice_id=payment_id,
    )
