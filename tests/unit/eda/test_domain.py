"""The order aggregate: every state against every operation, bill comparison, the TTL rule."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from qrpay.eda.domain import (
    ALLOWED_MOVES,
    Order,
    TransitionNotAllowed,
    is_expired,
    same_bill,
)
from qrpay.eda.schemas import CreateOutcome, OrderStatus, PaymentPhase
from qrpay.kernel.errors import Conflict
from qrpay.kernel.schemas import Bill

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
W, P, D, C = (
    OrderStatus.WAITING,
    OrderStatus.PAYMENT_IN_PROGRESS,
    OrderStatus.PAYED,
    OrderStatus.CANCELED,
)


def bill(amount: str = "100", element: str = "120") -> Bill:
    return Bill.model_validate(
        {"currency": "RUB", "amount": amount, "elements": [{"name": "Borscht", "amount": element}]}
    )


HOLDING, CLEARING, ROLLING_BACK = (
    PaymentPhase.HOLDING,
    PaymentPhase.CLEARING,
    PaymentPhase.ROLLING_BACK,
)


def order(
    status: OrderStatus = W, payment_id: str | None = None, phase: PaymentPhase | None = None
) -> Order:
    base = Order.new(
        order_id="o1", client_id="rest-1", internal_order_id="i1", bill=bill(), now=NOW
    )
    if status in (P, D) and payment_id is None:
        payment_id = "pay-1"
    if status is P and phase is None:
        phase = HOLDING
    return replace(base, status=status, payment_id=payment_id, payment_phase=phase)


def outcome(call):
    """What an operation did: the new status, 'same' for an idempotent no-op, or the error code."""
    try:
        before_after = call()
    except Conflict as exc:
        return exc.code
    before, after = before_after
    return "same" if after is before else after.status


X = OrderStatus.CLOSED  # by the waiter: like CANCELED for every payment move
START = {
    W: P,
    P: "same",  # same payment id: a repeat
    D: "already_paid",
    C: "order_closed",
    X: "order_closed",
}
START_OTHER_ID = {
    W: P,
    P: "payment_in_progress",
    D: "already_paid",
    C: "order_closed",
    X: "order_closed",
}
FAIL = {W: "same", P: W, D: "already_paid", C: "same", X: "same"}
FAIL_OTHER_ID = {W: "same", P: "payment_mismatch", D: "payment_mismatch", C: "same", X: "same"}
# A succeeded clear completes its payment from any phase (its fence is the claim in eda or
# the capture in transactions); an order given back has no payment to complete.
COMPLETE = {W: "payment_not_started", P: D, D: "same", C: "order_closed", X: "order_closed"}
COMPLETE_OTHER_ID = {
    W: "payment_not_started",
    P: "payment_mismatch",
    D: "payment_mismatch",
    C: "order_closed",
    X: "order_closed",
}
REPLACE_BILL = {
    W: "bill_replaced",
    P: "order_locked",
    D: "order_locked",
    C: "order_locked",
    X: "order_locked",
}
CLOSE = {W: X, P: "payment_in_progress", D: "already_paid", C: "order_closed", X: "same"}


@pytest.mark.parametrize("status", list(OrderStatus))
def test_start_payment(status: OrderStatus) -> None:
    o = order(status)
    assert (
        outcome(lambda: (o, o.start_payment("pay-1", Decimal("100"), "RUB", NOW)))
        == (START[status])
    )
    assert (
        outcome(lambda: (o, o.start_payment("pay-2", Decimal("100"), "RUB", NOW)))
        == (START_OTHER_ID[status])
    )


@pytest.mark.parametrize("status", list(OrderStatus))
def test_close(status: OrderStatus) -> None:
    o = order(status)
    assert outcome(lambda: (o, o.close(NOW))) == CLOSE[status]


@pytest.mark.parametrize("status", list(OrderStatus))
def test_fail_payment(status: OrderStatus) -> None:
    o = order(status)
    assert outcome(lambda: (o, o.fail_payment("pay-1", NOW))) == FAIL[status]
    assert outcome(lambda: (o, o.fail_payment("pay-2", NOW))) == FAIL_OTHER_ID[status]


@pytest.mark.parametrize("status", list(OrderStatus))
def test_complete_payment(status: OrderStatus) -> None:
    o = order(status)
    assert outcome(lambda: (o, o.complete_payment("pay-1", NOW))) == COMPLETE[status]
    assert outcome(lambda: (o, o.complete_payment("pay-2", NOW))) == COMPLETE_OTHER_ID[status]


@pytest.mark.parametrize("status", list(OrderStatus))
def test_repeated_create(status: OrderStatus) -> None:
    o = order(status)
    same, result = o.with_bill(bill("100.00", "120.00"), NOW)
    assert same is o
    assert result == CreateOutcome.EXISTING
    expected = REPLACE_BILL[status]
    if expected != "bill_replaced":
        with pytest.raises(Conflict) as caught:
            o.with_bill(bill("150"), NOW)
        assert caught.value.code == expected
        return
    changed, result = o.with_bill(bill("150"), NOW)
    assert result == CreateOutcome.BILL_REPLACED
    assert changed.bill.amount == "150.00"
    assert changed.bill_version == o.bill_version + 1
    assert changed.version == o.version + 1
    assert changed.status == W


def test_start_payment_records_the_payment_and_bumps_the_version() -> None:
    started = order().start_payment("pay-9", Decimal("100.00"), "RUB", NOW + timedelta(1))
    assert started.payment_id == "pay-9"
    assert started.version == 2
    assert started.updated_at == NOW + timedelta(1)


@pytest.mark.parametrize(
    ("amount", "currency"), [("99.99", "RUB"), ("100.01", "RUB"), ("100", "USD")]
)
def test_start_payment_of_another_bill_is_bill_changed(amount: str, currency: str) -> None:
    with pytest.raises(Conflict) as caught:
        order().start_payment("pay-1", Decimal(amount), currency, NOW)
    assert caught.value.code == "bill_changed"


def test_fail_payment_clears_the_payment() -> None:
    failed = order(P).fail_payment("pay-1", NOW)
    assert failed.status == W
    assert failed.payment_id is None
    # The order is open again: another attempt may start.
    assert failed.start_payment("pay-2", Decimal("100"), "RUB", NOW).status == P


def test_only_the_listed_moves_exist() -> None:
    assert {(W, P), (P, W), (P, D), (W, C), (W, D), (W, OrderStatus.CLOSED)} == ALLOWED_MOVES
    for status in OrderStatus:
        for to in OrderStatus:
            if (status, to) not in ALLOWED_MOVES:
                with pytest.raises(TransitionNotAllowed):
                    order(status)._move(to, NOW, payment_id=None)


def test_shares_move_the_order_only_while_it_waits() -> None:
    touched = order(W).share_changed(NOW)
    assert touched.version == order(W).version + 1
    assert touched.paid_by_shares(NOW).status == D
    for status in (P, D, C):
        with pytest.raises(TransitionNotAllowed):
            order(status).share_changed(NOW)


def test_canonical_bills_compare_equal() -> None:
    assert same_bill(bill("100", "120"), bill("100.00", "120.0"))
    assert not same_bill(bill("100"), bill("100.01"))
    assert not same_bill(bill("100", "120"), bill("100", "121"))
    renamed = Bill.model_validate(
        {"currency": "RUB", "amount": "100", "elements": [{"name": "Soup", "amount": "120"}]}
    )
    assert not same_bill(bill(), renamed)


def test_new_orders_store_the_canonical_bill() -> None:
    assert order().bill.amount == "100.00"
    assert order().bill.elements[0].amount == "120.00"


@pytest.mark.parametrize(
    ("status", "age", "expired"),
    [
        (W, 3601, True),
        (W, 3600, False),
        (W, 10, False),
        (P, 10**6, False),
        (D, 10**6, False),
        (C, 10**6, False),
    ],
)
def test_ttl_rule(status: OrderStatus, age: int, expired: bool) -> None:
    now = NOW + timedelta(seconds=age)
    assert is_expired(status, NOW, now, 3600) is expired
    o = order(status)
    after = o.expire(now, 3600)
    assert (after.status == C and after is not o) is expired
    if not expired:
        assert after is o


# The payment phases: (phase, operation) -> outcome for the order's own payment id.
PHASE_TABLE = {
    (HOLDING, "claim_clear"): CLEARING,
    (CLEARING, "claim_clear"): "same",
    (ROLLING_BACK, "claim_clear"): "payment_rolling_back",
    (HOLDING, "begin_rollback"): ROLLING_BACK,
    (CLEARING, "begin_rollback"): "payment_clearing",
    (ROLLING_BACK, "begin_rollback"): "same",
    (HOLDING, "fail_payment"): W,
    (CLEARING, "fail_payment"): "payment_clearing",
    (ROLLING_BACK, "fail_payment"): W,
    (HOLDING, "complete_payment"): D,
    (CLEARING, "complete_payment"): D,
    (ROLLING_BACK, "complete_payment"): D,
}


def phase_outcome(o: Order, operation: str, payment_id: str = "pay-1") -> object:
    try:
        after = getattr(o, operation)(payment_id, NOW)
    except Conflict as exc:
        return exc.code
    if after is o:
        return "same"
    return after.payment_phase if after.status is P else after.status


@pytest.mark.parametrize(("phase", "operation"), list(PHASE_TABLE))
def test_payment_phases(phase: PaymentPhase, operation: str) -> None:
    assert phase_outcome(order(P, phase=phase), operation) == PHASE_TABLE[(phase, operation)]
    # Another payment's id never moves the order.
    assert phase_outcome(order(P, phase=phase), operation, "pay-2") == "payment_mismatch"


@pytest.mark.parametrize("operation", ["claim_clear", "begin_rollback"])
def test_claims_of_settled_orders(operation: str) -> None:
    assert phase_outcome(order(D), operation) == (
        "same" if operation == "claim_clear" else "already_paid"
    )
    expected = "payment_not_started" if operation == "claim_clear" else "same"
    assert phase_outcome(order(W), operation) == expected


def test_a_claimed_clear_cannot_be_rolled_back_by_any_sequence() -> None:
    """Once the clear claimed the payment, only PAYED is reachable: never back to WAITING."""
    claimed = order(P).claim_clear("pay-1", NOW)
    frontier = [claimed]
    seen = set()
    operations = ["claim_clear", "begin_rollback", "fail_payment", "complete_payment"]
    while frontier:
        current = frontier.pop()
        seen.add((current.status, current.payment_phase))
        for operation in operations:
            try:
                nxt = getattr(current, operation)("pay-1", NOW)
            except Conflict:
                continue
            if (nxt.status, nxt.payment_phase) not in seen:
                frontier.append(nxt)
    assert seen == {(P, CLEARING), (D, None)}


def test_start_payment_checks_the_bill_version_the_guest_saw() -> None:
    o = order(W)
    with pytest.raises(Conflict) as caught:
        o.start_payment("pay-1", Decimal("100"), "RUB", NOW, bill_version=o.bill_version + 1)
    assert caught.value.code == "bill_changed"
    started = o.start_payment("pay-1", Decimal("100"), "RUB", NOW, bill_version=o.bill_version)
    assert (started.status, started.payment_phase) == (P, HOLDING)
