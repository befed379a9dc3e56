"""Shares of one bill: equal shares, items, custom amounts, racing guests, bill replacement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrpay.eda.split import Ledger, Share, ShareMoveRefused, ShareState, SplitCode
from qrpay.kernel.errors import Conflict, InvalidInput
from qrpay.kernel.schemas import Bill, BillElement

D = Decimal
HOLDING, PAID, RELEASED = ShareState.HOLDING, ShareState.PAID, ShareState.RELEASED


def bill(total: str, *lines: str, currency: str = "RUB") -> Bill:
    elements = [BillElement(name=f"line {i}", amount=a) for i, a in enumerate(lines or (total,))]
    return Bill(currency=currency, amount=total, elements=elements).canonical()


def share(
    n: int, amount: str, *, items: tuple[int, ...] = (), state: ShareState = HOLDING
) -> Share:
    return Share(id=f"s{n}", amount=D(amount), tip=D(0), items=frozenset(items), state=state)


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
    assert caught.value.code == SplitCode.INVALID_PARTS


def test_items_are_priced_at_their_lines_and_cannot_be_taken_twice() -> None:
    ledger = Ledger(bill("100", "40", "35", "25"))
    assert ledger.items_amount([0, 2]) == D("65")
    ledger = ledger.admit(share(0, "65", items=(0, 2)))
    with pytest.raises(Conflict) as caught:
        ledger.items_amount([2])
    assert caught.value.code == SplitCode.ITEM_TAKEN
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
    assert caught.value.code == SplitCode.ITEM_NOT_PAYABLE


def test_the_last_items_take_the_rounding_remainder() -> None:
    ledger = Ledger(bill("100", "1", "1", "1"))
    first = ledger.items_amount([0])
    assert first == D("33.33")
    ledger = ledger.admit(share(0, str(first), items=(0,)))
    ledger = ledger.admit(share(1, str(ledger.items_amount([1])), items=(1,)))
    assert ledger.items_amount([2]) == D("33.34")


@pytest.mark.parametrize(
    ("items", "code"), [([], SplitCode.UNKNOWN_ITEM), ([5], SplitCode.UNKNOWN_ITEM)]
)
def test_unknown_items_are_refused(items: list[int], code: SplitCode) -> None:
    with pytest.raises(InvalidInput) as caught:
        Ledger(bill("100", "40", "60")).items_amount(items)
    assert caught.value.code == code


def test_a_custom_amount_up_to_what_is_left() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "70"))
    assert ledger.custom_amount(D("30")) == D("30")
    with pytest.raises(Conflict) as caught:
        ledger.custom_amount(D("30.01"))
    assert caught.value.code == SplitCode.AMOUNT_EXCEEDS_LEFT
    for bad in ("0", "-1", "1.001"):
        with pytest.raises(InvalidInput):
            ledger.custom_amount(D(bad))


def test_nothing_left_once_everything_is_paid_or_held() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "100"))
    assert not ledger.settled  # held, not yet paid
    with pytest.raises(Conflict) as caught:
        ledger.everything_left()
    assert caught.value.code == SplitCode.NOTHING_LEFT
    assert ledger.move("s0", PAID).settled


def test_a_paid_share_is_never_released_and_a_replay_changes_nothing() -> None:
    ledger = Ledger(bill("100")).admit(share(0, "100")).move("s0", PAID)
    assert ledger.move("s0", PAID) is ledger
    with pytest.raises(ShareMoveRefused):
        ledger.move("s0", RELEASED)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ((ShareState.CLEARING, PAID), True),
        ((ShareState.ROLLING_BACK, RELEASED), True),
        ((ShareState.ROLLING_BACK, PAID), True),  # a succeeded clear is a fact
        ((RELEASED, PAID), False),  # money given back is never taken as paid
        ((ShareState.CLEARING, RELEASED), False),  # once claimed by the clear
        ((ShareState.CLEARING, ShareState.ROLLING_BACK), False),
        ((ShareState.ROLLING_BACK, ShareState.CLEARING), False),
    ],
)
def test_share_moves(path: tuple[ShareState, ShareState], allowed: bool) -> None:
    ledger = Ledger(bill("100")).admit(share(0, "100")).move("s0", path[0])
    if allowed:
        moved = ledger.move("s0", path[1]).share("s0")
        assert moved is not None
        assert moved.state == path[1]
    else:
        with pytest.raises(ShareMoveRefused):
            ledger.move("s0", path[1])


def test_a_replacement_bill_keeps_what_is_paid() -> None:
    ledger = Ledger(bill("100", "40", "60")).admit(share(0, "40", items=(0,)))
    assert ledger.replace_bill(bill("120", "40", "80")).total == D("120")
    with pytest.raises(Conflict) as below:
        Ledger(bill("100")).admit(share(0, "70")).replace_bill(bill("60"))
    assert below.value.code == SplitCode.BILL_BELOW_PAID
    for changed in (bill("100", "45", "55"), bill("100", "100")):
        with pytest.raises(Conflict) as caught:
            ledger.replace_bill(changed)
        assert caught.value.code == SplitCode.TAKEN_ITEM_CHANGED


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
                held = [s for s in ledger.shares if s.state == HOLDING]
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
        assert all(s.amount > 0 for s in ledger.shares)
        reserving = [i for s in ledger.shares if s.reserves for i in s.items]
        assert len(reserving) == len(set(reserving))
