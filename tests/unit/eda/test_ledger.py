"""An order's payments, each a share of the bill: equal shares, items, custom amounts, the
whole bill (everything left), racing guests, bill replacement, the order of clearing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qrpay.eda.domain import status_of
from qrpay.eda.ledger import ALLOWED_PAYMENT_MOVES, Ledger, Payment, PaymentMoveRefused
from qrpay.eda.schemas import Bill, BillElement, LedgerCode, OrderStatus, PaymentState, ShareChoice
from qrpay.kernel.errors import Conflict, InvalidInput
from tests.support.ledgers import assert_only_allowed_moves, payment

D = Decimal
HOLDING, PAID, RELEASED = PaymentState.HOLDING, PaymentState.PAID, PaymentState.RELEASED
CLEARING, ROLLING_BACK = PaymentState.CLEARING, PaymentState.ROLLING_BACK


def bill(total: str, *lines: str, currency: str = "RUB") -> Bill:
    elements = [BillElement(name=f"line {i}", amount=a) for i, a in enumerate(lines or (total,))]
    return Bill(currency=currency, amount=total, elements=elements).canonical()


def share(
    n: int, amount: str, *, items: tuple[int, ...] = (), state: PaymentState = HOLDING
) -> Payment:
    return payment(f"s{n}", amount, state, items)


def pay_equal(ledger: Ledger, parts: int) -> tuple[Ledger, list[Decimal]]:
    paid = []
    for n in range(parts):
        amount = ledger.equal_share(parts)
        ledger = ledger.admit(share(n, str(amount))).move(f"s{n}", PAID)
        paid.append(amount)
    return ledger, paid


def test_equal_shares_add_up_to_the_total_and_the_last_takes_the_remainder() -> None:
    ledger, paid = pay_equal(Ledger(bill("100")), 3)
    assert paid == [D("33.33"), D("33.33"), D("33.34")]
    assert ledger.settled
    assert ledger.left == 0


def test_an_equal_share_after_a_custom_amount_is_still_a_share_not_the_rest() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "50"))
    assert ledger.equal_share(3) == D("33.33")


def test_an_equal_share_never_exceeds_what_is_left() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "90"))
    assert ledger.equal_share(3) == D("10")


@pytest.mark.parametrize("parts", [0, 1, 51])
def test_parts_out_of_range_are_refused(parts: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        Ledger(bill("100")).equal_share(parts)
    assert caught.value.code == LedgerCode.INVALID_PARTS


def test_items_are_priced_at_their_lines_and_cannot_be_taken_twice() -> None:
    ledger = Ledger(bill("100", "40", "35", "25"))
    assert ledger.items_amount([0, 2]) == D("65")
    ledger = ledger.admit(share(0, "65", items=(0, 2)))
    with pytest.raises(Conflict) as caught:
        ledger.items_amount([2])
    assert caught.value.code == LedgerCode.ITEM_TAKEN
    with pytest.raises(Conflict):  # a racing guest who priced it before the first took it
        ledger.admit(share(1, "25", items=(2,)))


def test_a_released_share_frees_its_items_and_amount() -> None:
    ledger = Ledger(bill("100", "40", "60")).admit(share(0, "40", items=(0,)))
    ledger = ledger.move("s0", RELEASED)
    assert ledger.left == D("100")
    assert ledger.items_amount([0]) == D("40")


def test_a_discount_line_is_spread_over_the_items_and_the_last_items_pay_the_rest() -> None:
    ledger = Ledger(bill("90", "50", "50", "-10"))
    assert ledger.items_amount([0]) == D("45")
    ledger = ledger.admit(share(0, "45", items=(0,)))
    assert ledger.items_amount([1]) == D("45")
    with pytest.raises(InvalidInput) as caught:
        ledger.items_amount([2])
    assert caught.value.code == LedgerCode.ITEM_NOT_PAYABLE


def test_the_last_items_take_the_rounding_remainder() -> None:
    ledger = Ledger(bill("100", "1", "1", "1"))
    first = ledger.items_amount([0])
    assert first == D("33.33")
    ledger = ledger.admit(share(0, str(first), items=(0,)))
    ledger = ledger.admit(share(1, str(ledger.items_amount([1])), items=(1,)))
    assert ledger.items_amount([2]) == D("33.34")


@pytest.mark.parametrize(
    ("items", "code"), [([], LedgerCode.UNKNOWN_ITEM), ([5], LedgerCode.UNKNOWN_ITEM)]
)
def test_unknown_items_are_refused(items: list[int], code: LedgerCode) -> None:
    with pytest.raises(InvalidInput) as caught:
        Ledger(bill("100", "40", "60")).items_amount(items)
    assert caught.value.code == code


def test_a_custom_amount_up_to_what_is_left() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "70"))
    assert ledger.custom_amount(D("30")) == D("30")
    with pytest.raises(Conflict) as caught:
        ledger.custom_amount(D("30.01"))
    assert caught.value.code == LedgerCode.AMOUNT_EXCEEDS_LEFT
    for bad in ("0", "-1", "1.001"):
        with pytest.raises(InvalidInput):
            ledger.custom_amount(D(bad))


def test_nothing_left_once_everything_is_paid_or_held() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "100"))
    assert not ledger.settled  # held, not yet paid
    with pytest.raises(Conflict) as caught:
        ledger.everything_left()
    assert caught.value.code == LedgerCode.NOTHING_LEFT
    assert ledger.move("s0", PAID).settled


def test_a_paid_share_is_never_released_and_a_replay_changes_nothing() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "100")).move("s0", PAID)
    assert ledger.move("s0", PAID) is ledger
    with pytest.raises(PaymentMoveRefused):
        ledger.move("s0", RELEASED)


def test_only_the_listed_payment_moves_exist() -> None:
    assert {
        (HOLDING, ROLLING_BACK),
        (HOLDING, RELEASED),
        (ROLLING_BACK, RELEASED),
        (HOLDING, PAID),
        (CLEARING, PAID),
        (ROLLING_BACK, PAID),  # a succeeded clear is a fact
    } == ALLOWED_PAYMENT_MOVES
    # Refused: money given back is never taken as paid; a claimed clear is never given
    # back; nothing starts a clear any more (CLEARING is only a legacy state).
    assert_only_allowed_moves(
        PaymentState,
        ALLOWED_PAYMENT_MOVES,
        start=lambda current: Ledger(bill("100"), (share(0, "100", state=current),)),
        move=lambda ledger, to: ledger.move("s0", to),
        find=lambda ledger: ledger.payment("s0"),
        refused=PaymentMoveRefused,
    )


def test_paid_seq_numbers_payments_in_the_order_they_cleared() -> None:
    ledger = Ledger(bill("100"))
    for n, amount in enumerate(("10", "20", "30", "40")):
        ledger = ledger.admit(share(n, amount))
    for n in (2, 0, 3):
        ledger = ledger.move(f"s{n}", PAID)
    ledger = ledger.move("s1", RELEASED)
    assert {p.id: p.paid_seq for p in ledger.payments} == {"s0": 2, "s1": None, "s2": 1, "s3": 3}
    # A replayed clear keeps its number.
    assert ledger.move("s2", PAID).payment("s2") == ledger.payment("s2")


def test_admission_checks_every_item_against_the_bill() -> None:
    ledger = Ledger(bill("100", "40", "60"))
    for items, code in (
        ((2,), LedgerCode.UNKNOWN_ITEM),
        ((1, 7), LedgerCode.UNKNOWN_ITEM),
        ((-1,), LedgerCode.UNKNOWN_ITEM),
    ):
        with pytest.raises(InvalidInput) as caught:
            ledger.admit(share(0, "1", items=items))
        assert caught.value.code == code, items
    discounted = Ledger(bill("30", "40", "-10"))
    with pytest.raises(InvalidInput) as not_payable:
        discounted.admit(share(0, "1", items=(1,)))
    assert not_payable.value.code == LedgerCode.ITEM_NOT_PAYABLE
    assert ledger.admit(share(0, "40", items=(0,))).taken_items() == {0}


@pytest.mark.parametrize("way", ["rest", "equal", "amount"])
def test_items_come_only_with_way_items(way: str) -> None:
    extras: dict[str, dict[str, Any]] = {"equal": {"parts": 2}, "amount": {"amount": "10"}}
    extra = extras.get(way, {})
    with pytest.raises(ValidationError):
        ShareChoice.model_validate({"way": way, "items": [0], **extra})
    assert ShareChoice.model_validate({"way": way, **extra}).items == ()
    assert ShareChoice.model_validate({"way": "items", "items": [0]}).items == (0,)


def test_a_whole_bill_payment_is_the_share_of_everything_left() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "30")).move("s0", PAID)
    assert ledger.everything_left() == D("70")
    ledger = ledger.admit(share(1, "70"))
    assert (ledger.covered, ledger.settled, ledger.under_way) == (True, False, True)
    ledger = ledger.move("s1", PAID)
    assert (ledger.paid, ledger.held, ledger.settled) == (D("100"), D(0), True)


def test_a_replacement_bill_keeps_what_is_paid() -> None:
    ledger = Ledger(bill("100", "40", "60")).admit(share(0, "40", items=(0,)))
    assert ledger.replace_bill(bill("120", "40", "80")).total == D("120")
    with pytest.raises(Conflict) as below:
        Ledger(bill("100")).admit(share(0, "70")).replace_bill(bill("60"))
    assert below.value.code == LedgerCode.BILL_BELOW_PAID
    for changed in (bill("100", "45", "55"), bill("100", "100")):
        with pytest.raises(Conflict) as caught:
            ledger.replace_bill(changed)
        assert caught.value.code == LedgerCode.TAKEN_ITEM_CHANGED


def test_a_replacement_bill_that_drops_a_taken_line_is_a_conflict() -> None:
    ledger = Ledger(bill("100", "40", "60")).admit(share(0, "60", items=(1,)))
    with pytest.raises(Conflict) as caught:
        ledger.replace_bill(bill("100", "100"))  # line 1 is gone
    assert caught.value.code == LedgerCode.TAKEN_ITEM_CHANGED
    # Lines after the taken ones may change or go.
    kept = Ledger(bill("100", "40", "60")).admit(share(0, "40", items=(0,)))
    assert kept.replace_bill(bill("40", "40")).total == D("40")


def test_a_replacement_bill_may_equal_what_is_paid_or_held_not_go_below_it() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "30")).move("s0", PAID).admit(share(1, "20"))
    assert ledger.replace_bill(bill("50")).left == 0
    with pytest.raises(Conflict) as caught:
        ledger.replace_bill(bill("49.99"))
    assert caught.value.code == LedgerCode.BILL_BELOW_PAID
    given_back = ledger.move("s1", RELEASED)
    assert given_back.replace_bill(bill("30")).settled


def test_the_currency_of_an_order_with_any_payment_is_locked() -> None:
    assert Ledger(bill("100")).replace_bill(bill("100", currency="USD")).currency == "USD"
    for state in (HOLDING, PAID, RELEASED):
        with pytest.raises(Conflict) as caught:
            Ledger(bill("100"), (share(0, "10", state=state),)).replace_bill(
                bill("100", currency="USD")
            )
        assert caught.value.code == LedgerCode.CURRENCY_LOCKED


choice = st.one_of(
    st.tuples(st.just("rest"), st.none()),
    st.tuples(st.just("equal"), st.integers(2, 6)),
    st.tuples(st.just("items"), st.lists(st.integers(0, 4), min_size=1, max_size=3)),
    st.tuples(st.just("custom"), st.integers(1, 10_000).map(lambda c: D(c) / 100)),
    st.tuples(st.just("release"), st.integers(0, 10)),
    st.tuples(st.just("pay"), st.integers(0, 10)),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.integers(-500, 5_000).map(lambda c: D(c) / 100), min_size=1, max_size=5),
    steps=st.lists(choice, max_size=25),
)
def test_no_sequence_of_guests_pays_more_than_the_total_or_an_item_twice(
    lines: list[Decimal], steps: list[tuple[str, Any]]
) -> None:
    total = max(sum(lines, D(0)), D("0.01"))
    ledger = Ledger(bill(str(total), *(str(line) for line in lines)))
    for n, (kind, arg) in enumerate(steps):
        try:
            if kind == "release" or kind == "pay":
                held = [s for s in ledger.payments if s.state == HOLDING]
                if held:
                    target = held[arg % len(held)]
                    ledger = ledger.move(target.id, PAID if kind == "pay" else RELEASED)
                continue
            items: tuple[int, ...] = ()
            if kind == "rest":
                amount = ledger.everything_left()
            elif kind == "equal":
                amount = ledger.equal_share(arg)
            elif kind == "items":
                items = tuple(arg)
                amount = ledger.items_amount(items)
            else:
                amount = ledger.custom_amount(arg)
            ledger = ledger.admit(share(n, str(amount), items=items))
        except (Conflict, InvalidInput):
            continue
        assert ledger.paid + ledger.held <= ledger.total
        assert all(s.amount > 0 for s in ledger.payments)
        status = status_of(ledger)
        assert (status == OrderStatus.PAYED) == (ledger.paid == ledger.total)
        assert (status == OrderStatus.PAYMENT_IN_PROGRESS) == (
            ledger.paid < ledger.total and ledger.paid + ledger.held == ledger.total
        )
        seqs = sorted(s.paid_seq or 0 for s in ledger.payments if s.state == PAID)
        assert seqs == list(range(1, len(seqs) + 1))
        assert all(s.paid_seq is None for s in ledger.payments if s.state != PAID)
        reserving = [i for s in ledger.payments if s.reserves for i in s.items]
        assert len(reserving) == len(set(reserving))
