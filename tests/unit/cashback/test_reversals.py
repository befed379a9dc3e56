"""Reversals, the debt they leave and its repayment by later accruals (pure rules)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrpay.cashback.domain import Account, Accrual, Ledger, Repayment, Reversal
from qrpay.cashback.schemas import EntryKind
from qrpay.kernel.errors import Conflict, InvalidInput

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def accrual(key: str, amount: str, currency: str = "RUB", at: datetime = NOW) -> Accrual:
    return Accrual.new(
        order_id=key, user_id="u1", amount=amount, currency=currency, source="r", now=at
    )


def spent(amount: str, currency: str = "RUB") -> Reversal:
    """A balance spent elsewhere (this stand-in spends none): an entry taking ``amount``
    from the user's balance without reversing any of their accruals here."""
    return Reversal("spend", "elsewhere", "u1", amount, currency, amount, "0", NOW)


def accrue(ledger: Ledger, new: Accrual) -> Ledger:
    """What the service records for a new accrual: it, and its repayment of the debt."""
    repaid = ledger.repayment(new, new.created_at)
    return replace(
        ledger,
        accruals=[*ledger.accruals, new],
        repayments=[*ledger.repayments, *([repaid] if repaid else [])],
    )


def reverse(
    ledger: Ledger, key: str, amount: str, rid: str = "r1", currency: str = "RUB"
) -> tuple[Ledger, Reversal]:
    target = next(a for a in ledger.accruals if a.order_id == key)
    reversal = ledger.reverse(target, reversal_id=rid, amount=amount, currency=currency, now=NOW)
    return replace(ledger, reversals=[*ledger.reversals, reversal]), reversal


def state(ledger: Ledger, currency: str = "RUB") -> tuple[Decimal, Decimal]:
    account = ledger.account(currency)
    return account.balance, account.debt


def test_a_reversal_within_the_balance_takes_it_all() -> None:
    ledger = accrue(accrue(Ledger(), accrual("o1", "10")), accrual("o2", "5"))
    ledger, reversal = reverse(ledger, "o1", "4.5")
    assert (reversal.amount, reversal.taken, reversal.debt) == ("4.50", "4.50", "0.00")
    assert not reversal.owes
    assert (reversal.reversal_id, reversal.accrual_key) == ("r1", "o1")
    assert (reversal.user_id, reversal.currency, reversal.created_at) == ("u1", "RUB", NOW)
    assert state(ledger) == (Decimal("10.50"), 0)
    # All of an accrual may be reversed, in parts.
    ledger, rest = reverse(ledger, "o1", "5.50", rid="r2")
    assert (rest.taken, rest.debt) == ("5.50", "0.00")
    assert state(ledger) == (Decimal(5), 0)


def test_a_reversal_beyond_the_balance_takes_it_and_leaves_the_rest_as_debt() -> None:
    ledger = replace(accrue(Ledger(), accrual("o1", "10")), reversals=[spent("8")])
    assert state(ledger) == (Decimal(2), 0)
    ledger, reversal = reverse(ledger, "o1", "5")
    assert (reversal.amount, reversal.taken, reversal.debt) == ("5.00", "2.00", "3.00")
    assert reversal.owes
    assert state(ledger) == (0, Decimal(3))
    # With the balance at zero, a further reversal is all debt.
    ledger, more = reverse(ledger, "o1", "1", rid="r2")
    assert (more.taken, more.debt) == ("0.00", "1.00")
    assert state(ledger) == (0, Decimal(4))


def test_the_next_accrual_repays_the_debt_partly_then_fully() -> None:
    ledger = replace(accrue(Ledger(), accrual("o1", "10")), reversals=[spent("10")])
    ledger, _ = reverse(ledger, "o1", "6")
    assert state(ledger) == (0, Decimal(6))

    ledger = accrue(ledger, accrual("o2", "4"))  # all of it repays
    assert ledger.accruals[-1].amount == "4.00"  # recorded as sent
    assert ledger.repayments[-1] == Repayment("o2", "u1", "4.00", "RUB", NOW)
    assert state(ledger) == (0, Decimal(2))

    ledger = accrue(ledger, accrual("o3", "5"))  # 2 repay, 3 are the guest's
    assert ledger.repayments[-1].amount == "2.00"
    assert state(ledger) == (Decimal(3), 0)

    ledger = accrue(ledger, accrual("o4", "1"))  # no debt: nothing repaid
    assert [p.accrual_key for p in ledger.repayments] == ["o2", "o3"]
    assert state(ledger) == (Decimal(4), 0)


def test_a_debt_is_repaid_in_its_currency_only() -> None:
    ledger = replace(accrue(Ledger(), accrual("o1", "10")), reversals=[spent("10")])
    ledger, _ = reverse(ledger, "o1", "3")
    ledger = accrue(ledger, accrual("usd", "5", currency="USD"))
    assert ledger.repayments == []
    assert state(ledger, "USD") == (Decimal(5), 0)
    assert state(ledger) == (0, Decimal(3))


def test_reversals_of_an_accrual_never_sum_above_it() -> None:
    ledger = accrue(accrue(Ledger(), accrual("o1", "10")), accrual("o2", "100"))
    ledger, _ = reverse(ledger, "o1", "7", rid="r1")
    with pytest.raises(Conflict) as refused:
        reverse(ledger, "o1", "3.01", rid="r2")
    assert refused.value.code == "reversal_exceeds_accrual"
    assert "3.00 RUB" in refused.value.message
    # Another accrual's room does not count; exactly what is left does.
    ledger, last = reverse(ledger, "o1", "3.00", rid="r2")
    assert last.taken == "3.00"
    with pytest.raises(Conflict):
        reverse(ledger, "o1", "0.01", rid="r3")


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("1", "USD", "currency_mismatch"),
        ("0", "RUB", "amount_not_positive"),
        ("0.001", "RUB", "invalid_amount"),
    ],
)
def test_invalid_reversals(amount: str, currency: str, code: str) -> None:
    ledger = accrue(Ledger(), accrual("o1", "10"))
    with pytest.raises(InvalidInput) as refused:
        reverse(ledger, "o1", amount, currency=currency)
    assert refused.value.code == code


def test_a_repeat_asks_for_the_same_reversal() -> None:
    _, reversal = reverse(accrue(Ledger(), accrual("o1", "10")), "o1", "2.5")
    assert reversal.same_request("o1", "2.50", "RUB")
    assert reversal.same_request("o1", "2.5", "RUB")
    assert not reversal.same_request("o1", "2.51", "RUB")
    assert not reversal.same_request("o2", "2.50", "RUB")
    assert not reversal.same_request("o1", "2.50", "USD")


def test_account_takes_and_repays() -> None:
    account = Account("RUB", accrued=Decimal(10), taken=Decimal(8))
    assert account.take(Decimal(1)) == (1, 0)
    assert account.take(Decimal(5)) == (2, 3)
    owing = Account("RUB", accrued=Decimal(10), taken=Decimal(10), owed=Decimal(3))
    assert owing.take(Decimal(1)) == (0, 1)
    assert owing.repaid_by(Decimal(1)) == 1
    assert owing.repaid_by(Decimal(7)) == 3
    assert Account("RUB").repaid_by(Decimal(7)) == 0


def test_history_is_in_time_order_an_accrual_before_its_repayment() -> None:
    later = NOW + timedelta(minutes=1)
    ledger = Ledger(
        accruals=[accrual("o2", "1", at=later), accrual("o1", "10")],
        reversals=[Reversal("r1", "o1", "u1", "4.00", "RUB", "0.00", "4.00", NOW)],
        repayments=[Repayment("o2", "u1", "1.00", "RUB", later)],
    )
    entries = ledger.entries()
    assert [(e.kind, e.accrual_key, e.created_at) for e in entries] == [
        (EntryKind.ACCRUAL, "o1", NOW),
        (EntryKind.REVERSAL, "o1", NOW),
        (EntryKind.ACCRUAL, "o2", later),
        (EntryKind.REPAYMENT, "o2", later),
    ]
    assert (entries[0].amount, entries[0].source, entries[0].reversal_id) == ("10.00", "r", None)
    assert (entries[1].reversal_id, entries[1].taken, entries[1].debt) == ("r1", "0.00", "4.00")
    assert (entries[3].amount, entries[3].taken) == ("1.00", None)


# One step of a user's ledger: accrue this many cents, reverse this many cents of the
# accrual at this index (modulo), or spend this many cents elsewhere.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("accrue"), st.integers(1, 10_000), st.just(0)),
        st.tuples(st.just("reverse"), st.integers(1, 10_000), st.integers(0, 50)),
        st.tuples(st.just("spend"), st.integers(1, 10_000), st.just(0)),
    ),
    max_size=40,
)


@given(steps)
def test_the_balance_and_the_debt_never_go_below_zero(script: list[tuple[str, int, int]]) -> None:
    ledger = Ledger()
    for i, (kind, cents, index) in enumerate(script):
        amount = f"{Decimal(cents).scaleb(-2):.2f}"
        if kind == "accrue":
            ledger = accrue(ledger, accrual(f"o{i}", amount))
        elif kind == "spend":
            taken = min(cents, int(ledger.account("RUB").balance * 100))
            spend = spent(f"{Decimal(taken).scaleb(-2):.2f}")
            ledger = replace(
                ledger, reversals=[*ledger.reversals, replace(spend, reversal_id=f"s{i}")]
            )
        elif ledger.accruals:
            target = ledger.accruals[index % len(ledger.accruals)]
            try:
                ledger, reversal = reverse(ledger, target.order_id, amount, rid=f"r{i}")
            except Conflict:
                continue
            assert Decimal(reversal.taken) + Decimal(reversal.debt) == Decimal(reversal.amount)
        balance, debt = state(ledger)
        assert balance >= 0
        assert debt >= 0
        assert balance == 0 or debt == 0
    for key in {a.order_id for a in ledger.accruals}:
        reversed_total = sum(Decimal(r.amount) for r in ledger.reversals if r.accrual_key == key)
        accrued = next(a.value for a in ledger.accruals if a.order_id == key)
        assert reversed_total <= accrued
