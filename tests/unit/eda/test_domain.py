"""The order aggregate: its status from its payments, every state against every operation,
bill comparison and replacement, the TTL rule."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from qrpay.eda.domain import (
    ALLOWED_MOVES,
    Order,
    TransitionNotAllowed,
    is_expired,
    same_bill,
    status_of,
)
from qrpay.eda.ledger import Ledger, Payment
from qrpay.eda.schemas import Bill, CreateOutcome, OrderStatus, PaymentState
from qrpay.kernel.errors import Conflict
from tests.support.ledgers import payment as make_payment

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
W, P, D, C, X = (
    OrderStatus.WAITING,
    OrderStatus.PAYMENT_IN_PROGRESS,
    OrderStatus.PAYED,
    OrderStatus.CANCELED,
    OrderStatus.CLOSED,  # by the waiter: like CANCELED for every payment
)
HOLDING, ROLLING_BACK, CLEARING, PAID, RELEASED = (
    PaymentState.HOLDING,
    PaymentState.ROLLING_BACK,
    PaymentState.CLEARING,
    PaymentState.PAID,
    PaymentState.RELEASED,
)


def bill(amount: str = "100", element: str = "120", currency: str = "RUB") -> Bill:
    return Bill.model_validate(
        {
            "currency": currency,
            "amount": amount,
            "elements": [{"name": "Borscht", "amount": element}],
        }
    ).canonical()


def payment(
    n: int, amount: str, state: PaymentState = HOLDING, items: tuple[int, ...] = ()
) -> Payment:
    return make_payment(f"pay-{n}", amount, state, items)


def ledger(*payments: Payment, of: Bill | None = None) -> Ledger:
    return Ledger(of or bill(), payments)


def order(status: OrderStatus = W) -> Order:
    base = Order.new(
        order_id="o1", client_id="rest-1", internal_order_id="i1", bill=bill(), now=NOW
    )
    return replace(base, status=status)


def outcome(call: Callable[[], tuple[Order, Order]]) -> object:
    """What an operation did: the new status, 'same' for a no-op, or the error code."""
    try:
        before, after = call()
    except Conflict as exc:
        return exc.code
    return "same" if after is before else after.status


# --- the status an order's payments make ------------------------------------------------


@pytest.mark.parametrize(
    ("payments", "status"),
    [
        ((), W),
        ((payment(1, "100"),), P),  # a whole-bill payment holds everything
        ((payment(1, "40"),), W),  # a share: the rest is still for another guest
        ((payment(1, "40"), payment(2, "60")), P),  # live payments hold everything left
        ((payment(1, "40", PAID), payment(2, "60")), P),
        ((payment(1, "40", PAID), payment(2, "60", ROLLING_BACK)), P),
        ((payment(1, "100", CLEARING),), P),  # a payment made before issue 18
        ((payment(1, "40", PAID),), W),
        ((payment(1, "100", RELEASED),), W),
        ((payment(1, "40", PAID), payment(2, "60", RELEASED)), W),
        ((payment(1, "100", PAID),), D),
        ((payment(1, "40", PAID), payment(2, "60", PAID)), D),
    ],
)
def test_the_order_is_payed_iff_cleared_payments_cover_the_total(
    payments: tuple[Payment, ...], status: OrderStatus
) -> None:
    assert status_of(ledger(*payments)) == status


def test_settle_follows_the_payments_and_bumps_the_version() -> None:
    held = order(W).settle(ledger(payment(1, "100")), NOW + timedelta(1))
    assert (held.status, held.version, held.updated_at) == (P, 2, NOW + timedelta(1))
    assert held.settle(ledger(payment(1, "100", RELEASED)), NOW).status == W
    assert held.settle(ledger(payment(1, "100", PAID)), NOW).status == D
    # A share moves only the version: a POS following the feed learns of it.
    share = order(W).settle(ledger(payment(1, "40")), NOW)
    assert (share.status, share.version) == (W, 2)


@pytest.mark.parametrize("status", [C, X])
def test_settle_of_an_ended_order_keeps_its_status(status: OrderStatus) -> None:
    ended = order(status)
    after = ended.settle(ledger(payment(1, "100", PAID)), NOW)
    assert (after.status, after.version) == (status, ended.version + 1)


# --- a new payment ----------------------------------------------------------------------

PAYABLE = {
    W: "payable",
    P: "payment_in_progress",
    D: "already_paid",
    C: "order_closed",
    X: "order_closed",
}


def payable(o: Order, currency: str = "RUB", bill_version: int | None = None) -> str:
    try:
        o.check_payable(currency, bill_version)
    except Conflict as exc:
        return exc.code
    return "payable"


@pytest.mark.parametrize("status", list(OrderStatus))
def test_check_payable(status: OrderStatus) -> None:
    assert payable(order(status)) == PAYABLE[status]


def test_a_payment_of_another_bill_is_bill_changed() -> None:
    o = order(W)
    assert payable(o, currency="USD") == "bill_changed"
    assert payable(o, bill_version=o.bill_version + 1) == "bill_changed"
    assert payable(o, bill_version=o.bill_version) == "payable"


# --- the waiter, the TTL ----------------------------------------------------------------

CLOSE = {W: X, P: "payment_in_progress", D: "already_paid", C: "order_closed", X: "same"}


@pytest.mark.parametrize("status", list(OrderStatus))
def test_close(status: OrderStatus) -> None:
    o = order(status)
    under_way = ledger(payment(1, "100")) if status == P else ledger()
    assert outcome(lambda: (o, o.close(under_way, NOW))) == CLOSE[status]


def test_the_waiter_closes_a_partly_paid_order_but_not_one_with_a_payment_under_way() -> None:
    o = order(W)
    assert o.close(ledger(payment(1, "40", PAID)), NOW).status == X
    with pytest.raises(Conflict) as caught:
        o.close(ledger(payment(1, "40", PAID), payment(2, "20")), NOW)
    assert caught.value.code == "payment_in_progress"


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


def test_only_the_listed_moves_exist() -> None:
    assert {(W, P), (P, W), (P, D), (W, C), (W, D), (W, X)} == ALLOWED_MOVES
    for status in OrderStatus:
        for to in OrderStatus:
            if to != status and (status, to) not in ALLOWED_MOVES:
                with pytest.raises(TransitionNotAllowed):
                    order(status)._move(to, NOW)


# --- a repeated create: the same bill, or a replacement ---------------------------------

REPLACE_BILL = {
    W: "bill_replaced",
    P: "order_locked",
    D: "order_locked",
    C: "order_locked",
    X: "order_locked",
}


@pytest.mark.parametrize("status", list(OrderStatus))
def test_repeated_create(status: OrderStatus) -> None:
    o = order(status)
    same, result = o.with_bill(bill("100.00", "120.00"), ledger(), NOW)
    assert same is o
    assert result == CreateOutcome.EXISTING
    expected = REPLACE_BILL[status]
    if expected != "bill_replaced":
        with pytest.raises(Conflict) as caught:
            o.with_bill(bill("150"), ledger(), NOW)
        assert caught.value.code == expected
        return
    changed, result = o.with_bill(bill("150"), ledger(), NOW)
    assert result == CreateOutcome.BILL_REPLACED
    assert changed.bill.amount == "150.00"
    assert changed.bill_version == o.bill_version + 1
    assert changed.version == o.version + 1
    assert changed.status == W


def replaced(payments: tuple[Payment, ...], new: Bill) -> str:
    try:
        changed, _ = order(W).with_bill(new, ledger(*payments), NOW)
    except Conflict as exc:
        return exc.code
    return changed.status


@pytest.mark.parametrize(
    ("payments", "new", "expected"),
    [
        # Equal to what is paid: nothing is left, the order is PAYED at once.
        ((payment(1, "40", PAID),), bill("40", "40"), D),
        ((payment(1, "40", PAID), payment(2, "20", PAID)), bill("60", "60"), D),
        # Equal to what is paid and held: the live payment holds everything left.
        ((payment(1, "40", PAID), payment(2, "20")), bill("60", "60"), P),
        ((payment(1, "40", PAID),), bill("40.01", "40"), W),
        ((payment(1, "40", PAID),), bill("39.99", "40"), "bill_below_paid"),
        ((payment(1, "40"),), bill("39.99", "40"), "bill_below_paid"),  # held counts too
        ((payment(1, "100", RELEASED),), bill("10", "10"), W),  # given back: reserves nothing
        # Any payment, even one given back, locks the currency.
        ((payment(1, "40", RELEASED),), bill("100", "120", "USD"), "currency_locked"),
        ((payment(1, "40", PAID),), bill("100", "120", "USD"), "currency_locked"),
        ((), bill("100", "120", "USD"), W),
    ],
)
def test_a_replacement_bill(payments: tuple[Payment, ...], new: Bill, expected: object) -> None:
    assert replaced(payments, new) == expected


def test_a_replacement_that_drops_a_taken_line_is_refused_not_an_index_error() -> None:
    two_lines = Bill.model_validate(
        {
            "currency": "RUB",
            "amount": "100",
            "elements": [{"name": "Soup", "amount": "40"}, {"name": "Tea", "amount": "60"}],
        }
    ).canonical()
    o = replace(order(W), bill=two_lines)
    taken = Ledger(two_lines, (payment(1, "60", PAID, items=(1,)),))
    with pytest.raises(Conflict) as caught:
        o.with_bill(bill("100", "100"), taken, NOW)  # one line: line 1 is gone
    assert caught.value.code == "taken_item_changed"


# --- bills --------------------------------------------------------------------------------


def test_canonical_bills_compare_equal() -> None:
    assert same_bill(bill("100", "120"), bill("100.00", "120.0"))
    assert not same_bill(bill("100"), bill("100.01"))
    assert not same_bill(bill("100", "120"), bill("100", "121"))
    renamed = Bill.model_validate(
        {"currency": "RUB", "amount": "100", "elements": [{"name": "Soup", "amount": "120"}]}
    )
    assert not same_bill(bill(), renamed)


def test_new_orders_store_the_canonical_bill() -> None:
    raw = Bill.model_validate(
        {"currency": "RUB", "amount": "100", "elements": [{"name": "Borscht", "amount": "120"}]}
    )
    o = Order.new(order_id="o1", client_id="r", internal_order_id="i", bill=raw, now=NOW)
    assert o.bill.amount == "100.00"
    assert o.bill.elements[0].amount == "120.00"
