"""Refunds of paid payments (issue 19): the ledger's rules, the spreading over payments,
idempotency by refund id, and the moves of a refund part."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrpay.eda.domain import Order, status_of
from qrpay.eda.ledger import Ledger, Payment
from qrpay.eda.refunds import ALLOWED_REFUND_MOVES, Refund, RefundMoveRefused, RefundPart
from qrpay.eda.schemas import Bill, BillElement, EdaCode, OrderStatus, PaymentState, RefundState
from qrpay.kernel.errors import Conflict, InvalidInput, NotFound
from tests.support.ledgers import assert_only_allowed_moves

D = Decimal
HOLDING, PAID, RELEASED = PaymentState.HOLDING, PaymentState.PAID, PaymentState.RELEASED
REFUNDING, REFUNDED, FAILED = RefundState.REFUNDING, RefundState.REFUNDED, RefundState.FAILED


def paid(payment_id: str, amount: str, tip: str = "0", seq: int = 1) -> Payment:
    return Payment(
        id=payment_id,
        amount=D(amount),
        tip=D(tip),
        items=frozenset(),
        state=PAID,
        invoice_id=f"inv-{payment_id}",
        paid_seq=seq,
    )


def ledger_of(*payments: Payment, total: str = "100") -> Ledger:
    bill = Bill(currency="RUB", amount=total, elements=[BillElement(name="x", amount=total)])
    return Ledger(bill.canonical(), payments)


def ask(
    refund_id: str,
    amount: str,
    tip: str = "0",
    payment_id: str | None = None,
    caller_hash: str | None = None,
) -> Refund:
    return Refund.of(refund_id, D(amount), D(tip), payment_id, "RUB", caller_hash)


def taken(parts: tuple[RefundPart, ...]) -> list[tuple[str, str, Decimal, Decimal]]:
    return [(p.id, p.payment_id, p.amount, p.tip) for p in parts]


def refused(ledger: Ledger, request: Refund) -> str:
    with pytest.raises((Conflict, InvalidInput, NotFound)) as caught:
        ledger.refund(request)
    return str(caught.value.code)


# Two guests paid their shares: a (60 + tip 5) first, then b (40 + tip 10).
TWO = ledger_of(paid("a", "60", "5", seq=1), paid("b", "40", "10", seq=2))


def test_a_refund_of_one_payment_is_one_part_refunding() -> None:
    after, parts, replayed = TWO.refund(ask("r1", "25", "5", "a"))
    assert not replayed
    assert taken(parts) == [("r1.1", "a", D(25), D(5))]
    assert parts[0].state == REFUNDING
    assert after.refunds == parts
    # Refunding reserves, only refunded counts as given back.
    assert after.refundable(TWO.payments[0]) == (D(35), D(0))
    assert (after.refunded, after.refunded_tips) == (0, 0)
    done = after.move_refund("r1.1", REFUNDED)
    assert (done.refunded, done.refunded_tips, done.refunded_of("a")) == (25, 5, (25, 5))
    # Paid and what is left to pay are what they were: a refund never reopens the bill.
    assert (done.paid, done.tips, done.left, done.settled) == (100, 15, 0, True)
    assert status_of(done) == OrderStatus.PAYED


def test_without_a_payment_the_refund_is_spread_newest_paid_first() -> None:
    _, parts, _ = TWO.refund(ask("r1", "70"))
    assert taken(parts) == [("r1.1", "b", D(40), D(0)), ("r1.2", "a", D(30), D(0))]


def test_amount_and_tip_are_spread_each_on_its_own() -> None:
    # b has 10 of tip; the 12 of tip takes a's 2 as well, the 30 of amount only b's.
    _, parts, _ = TWO.refund(ask("r1", "30", "12"))
    assert taken(parts) == [("r1.1", "b", D(30), D(10)), ("r1.2", "a", D(0), D(2))]
    # A tip alone is a refund too.
    _, parts, _ = TWO.refund(ask("r2", "0", "3"))
    assert taken(parts) == [("r2.1", "b", D(0), D(3))]


def test_the_spread_skips_what_earlier_refunds_took_or_are_taking() -> None:
    ledger, _, _ = TWO.refund(ask("r1", "40", "0", "b"))  # still refunding
    _, parts, _ = ledger.refund(ask("r2", "10"))
    assert taken(parts) == [("r2.1", "a", D(10), D(0))]
    # A failed part gives its reservation back.
    ledger = ledger.move_refund("r1.1", FAILED)
    _, parts, _ = ledger.refund(ask("r3", "10"))
    assert taken(parts) == [("r3.1", "b", D(10), D(0))]


def test_payments_not_paid_are_never_refunded_nor_spread_over() -> None:
    held = replace(paid("h", "30"), state=HOLDING, paid_seq=None)
    given_back = replace(paid("g", "30"), state=RELEASED, paid_seq=None)
    ledger = ledger_of(paid("a", "40", seq=1), held, given_back)
    for payment_id in ("h", "g"):
        assert refused(ledger, ask("r", "1", "0", payment_id)) == "payment_not_refundable"
    assert refused(ledger, ask("r", "1", "0", "nope")) == "payment_not_found"
    _, parts, _ = ledger.refund(ask("r", "40"))
    assert taken(parts) == [("r.1", "a", D(40), D(0))]
    assert refused(ledger, ask("r", "41")) == "refund_exceeds_paid"
    # Nothing paid at all.
    assert refused(ledger_of(held), ask("r", "1")) == "payment_not_refundable"


@pytest.mark.parametrize(
    ("amount", "tip", "payment_id"),
    [
        ("60.01", "0", "a"),  # more than a's amount
        ("0", "5.01", "a"),  # more than a's tip
        ("100.01", "0", None),  # more than all that was paid
        ("0", "15.01", None),  # more than all tips
        ("1", "10", "a"),  # a's tip is 5: tips are never taken from the amount
    ],
)
def test_a_refund_never_exceeds_what_was_paid(
    amount: str, tip: str, payment_id: str | None
) -> None:
    assert refused(TWO, ask("r", amount, tip, payment_id)) == "refund_exceeds_paid"


def test_refunding_and_refunded_parts_together_stay_within_the_payment() -> None:
    ledger, _, _ = TWO.refund(ask("r1", "30", "5", "a"))
    ledger = ledger.move_refund("r1.1", REFUNDED)
    ledger, _, _ = ledger.refund(ask("r2", "30", "0", "a"))  # refunding
    assert refused(ledger, ask("r3", "0.01", "0", "a")) == "refund_exceeds_paid"
    assert refused(ledger, ask("r3", "0", "0.01", "a")) == "refund_exceeds_paid"
    assert ledger.refundable(TWO.payments[0]) == (0, 0)


@pytest.mark.parametrize(("amount", "tip"), [("0", "0"), ("-1", "5"), ("5", "-1")])
def test_a_refund_gives_back_something_and_nothing_negative(amount: str, tip: str) -> None:
    assert refused(TWO, ask("r", amount, tip)) == "invalid_refund_amount"


def test_the_same_refund_id_and_request_answers_its_parts() -> None:
    ledger, parts, _ = TWO.refund(ask("r1", "70"))
    ledger = ledger.move_refund("r1.1", REFUNDED)
    # "70" and "70.00" are one request; the answer is the parts as they stand now.
    again, replayed_parts, replayed = ledger.refund(ask("r1", "70.00"))
    assert replayed
    assert again is ledger
    assert taken(replayed_parts) == taken(parts)
    assert [p.state for p in replayed_parts] == [REFUNDED, REFUNDING]
    # Even when it would no longer fit (everything else was refunded meanwhile).
    ledger, _, _ = ledger.refund(ask("r2", "30"))
    assert ledger.refund(ask("r1", "70"))[2]


@pytest.mark.parametrize(
    "other",
    [
        ask("r1", "70.01"),
        ask("r1", "70", "1"),
        ask("r1", "70", "0", "a"),
        ask("r1", "70", caller_hash="h2"),
    ],
    ids=["amount", "tip", "payment", "caller_hash"],
)
def test_the_same_refund_id_with_another_request_is_refused(other: Refund) -> None:
    ledger, _, _ = TWO.refund(ask("r1", "70"))
    assert refused(ledger, other) == EdaCode.REFUND_ID_REUSED


def test_only_the_listed_refund_moves_exist() -> None:
    assert {(REFUNDING, REFUNDED), (REFUNDING, FAILED)} == ALLOWED_REFUND_MOVES
    with pytest.raises(KeyError):
        TWO.move_refund("r1.1", REFUNDED)

    def refunding(current: RefundState) -> Ledger:
        ledger, _, _ = TWO.refund(ask("r1", "10", "0", "a"))
        return ledger if current == REFUNDING else ledger.move_refund("r1.1", current)

    assert_only_allowed_moves(
        RefundState,
        ALLOWED_REFUND_MOVES,
        start=refunding,
        move=lambda ledger, to: ledger.move_refund("r1.1", to),
        find=lambda ledger: ledger.refund_part("r1.1"),
        refused=RefundMoveRefused,
    )


def test_refunded_fully_when_all_paid_money_and_tips_are_refunded() -> None:
    assert not TWO.refunded_fully
    assert not ledger_of().refunded_fully  # nothing paid, nothing refunded
    ledger, _, _ = TWO.refund(ask("r1", "100", "10"))
    for part in ledger.refunds:
        ledger = ledger.move_refund(part.id, REFUNDED)
    assert not ledger.refunded_fully  # 5 of a's tip is still paid
    ledger, _, _ = ledger.refund(ask("r2", "0", "5"))
    assert not ledger.refunded_fully  # being refunded is not refunded
    ledger = ledger.move_refund("r2.1", REFUNDED)
    assert ledger.refunded_fully
    assert status_of(ledger) == OrderStatus.PAYED


def test_a_refund_change_keeps_the_orders_status_and_notes_a_full_refund() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    order = Order.new(order_id="o", client_id="c", internal_order_id="i", bill=TWO.bill, now=now)
    order = replace(order, status=OrderStatus.PAYED, version=3)
    later = now.replace(hour=13)
    ledger, _, _ = TWO.refund(ask("r1", "100", "15"))
    changed = order.refund_changed(ledger, later)
    assert (changed.status, changed.version, changed.updated_at, changed.refunded_fully) == (
        OrderStatus.PAYED,
        4,
        later,
        False,
    )
    for part in ledger.refunds:
        ledger = ledger.move_refund(part.id, REFUNDED)
    done = changed.refund_changed(ledger, later)
    assert (done.status, done.version, done.refunded_fully) == (OrderStatus.PAYED, 5, True)


AMOUNTS = st.integers(min_value=0, max_value=60).map(lambda cents: D(cents))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            AMOUNTS,
            st.integers(min_value=0, max_value=8).map(D),
            st.sampled_from([None, "a", "b"]),
            st.sampled_from([REFUNDED, FAILED, REFUNDING]),
        ),
        max_size=12,
    )
)
def test_no_sequence_of_refunds_gives_back_more_than_a_payment_took(
    steps: list[tuple[Decimal, Decimal, str | None, RefundState]],
) -> None:
    ledger = TWO
    for n, (amount, tip, payment_id, outcome) in enumerate(steps):
        try:
            ledger, parts, _ = ledger.refund(ask(f"r{n}", str(amount), str(tip), payment_id))
        except (Conflict, InvalidInput):
            continue
        assert sum(p.amount for p in parts) == amount
        assert sum(p.tip for p in parts) == tip
        for part in parts:
            ledger = ledger.move_refund(part.id, outcome)
        for payment in ledger.payments:
            reserved = [r for r in ledger.refunds if r.payment_id == payment.id and r.reserves]
            assert sum(r.amount for r in reserved) <= payment.amount
            assert sum(r.tip for r in reserved) <= payment.tip
            assert all(r.amount >= 0 and r.tip >= 0 for r in reserved)
