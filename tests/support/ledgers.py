"""eda's payments built for unit tests of the ledger and the order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

import pytest

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


State = TypeVar("State", bound=Enum)


def assert_only_allowed_moves(
    states: Iterable[State],
    allowed: frozenset[tuple[State, State]],
    *,
    start: Callable[[State], Any],
    move: Callable[[Any, State], Any],
    find: Callable[[Any], Any],
    refused: type[Exception],
) -> None:
    """Every move between two ``states`` of one thing in a ledger: to its own state is a
    replay that changes nothing, an ``allowed`` one moves it, any other raises ``refused``.
    ``start(state)`` is a ledger holding the thing in ``state``; ``move(ledger, to)`` moves
    it; ``find(ledger)`` is the thing."""
    states = list(states)
    for current in states:
        for to in states:
            ledger = start(current)
            if current == to:
                assert move(ledger, to) is ledger, current  # a replay changes nothing
            elif (current, to) in allowed:
                moved = find(move(ledger, to))
                assert moved is not None
                assert moved.state == to, (current, to)
            else:
                with pytest.raises(refused):
                    move(ledger, to)
