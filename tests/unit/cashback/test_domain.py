"""Accrual comparison and exact balances."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrpay.cashback.domain import Accrual, Ledger, canonical_amount
from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import format_amount

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def accrual(**overrides: str) -> Accrual:
    fields = {
        "order_id": "o1",
        "user_id": "u1",
        "amount": "10",
        "currency": "RUB",
        "source": "rest-1",
        **overrides,
    }
    return Accrual.new(now=NOW, **fields)


def test_amounts_are_stored_canonically() -> None:
    assert accrual(amount="0.1").amount == "0.10"
    assert accrual(amount="7", currency="JPY").amount == "7"
    assert canonical_amount("100.5", "RUB") == "100.50"
    with pytest.raises(InvalidInput):
        canonical_amount("0.001", "RUB")


def test_the_same_accrual_printed_differently_is_a_repeat() -> None:
    assert accrual(amount="10").same_as(accrual(amount="10.00"))
    # The source is a label for the history, not part of the accrual's identity.
    assert accrual(source="a").same_as(accrual(source="b"))


@pytest.mark.parametrize(
    "other",
    [{"amount": "10.01"}, {"user_id": "u2"}, {"currency": "USD"}, {"order_id": "o2"}],
)
def test_a_different_accrual_is_not_a_repeat(other: dict[str, str]) -> None:
    assert not accrual().same_as(accrual(**other))


def balances(ledger: Ledger) -> dict[str, str]:
    return {c: format_amount(a.balance, c) for c, a in ledger.accounts().items()}


def test_balances_are_exact_per_currency() -> None:
    amounts = [("RUB", "0.10"), ("RUB", "0.10"), ("RUB", "0.10"), ("USD", "1.5"), ("JPY", "3")]
    ledger = Ledger(
        accruals=[
            accrual(order_id=f"o{i}", currency=c, amount=a) for i, (c, a) in enumerate(amounts)
        ]
    )
    assert balances(ledger) == {"JPY": "3", "RUB": "0.30", "USD": "1.50"}
    assert list(ledger.accounts()) == ["JPY", "RUB", "USD"]
    assert balances(Ledger()) == {}


@given(st.lists(st.integers(min_value=1, max_value=10**12), max_size=50))
def test_balance_equals_the_sum_in_minor_units(cents: list[int]) -> None:
    ledger = Ledger(
        accruals=[
            accrual(order_id=f"o{i}", amount=f"{Decimal(c).scaleb(-2):f}")
            for i, c in enumerate(cents)
        ]
    )
    expected = {"RUB": f"{Decimal(sum(cents)).scaleb(-2):.2f}"} if cents else {}
    assert balances(ledger) == expected
