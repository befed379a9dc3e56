from __future__ import annotations

from decimal import Decimal

import pytest

from qrpay.eda.schemas import OrderStatus, PaymentState
from qrpay.payments_eda import domain
from qrpay.payments_eda.domain import Decision, GuestStatus, MessageKey, Step
from qrpay.payments_eda.schemas import GUEST_MESSAGES
from qrpay.restaurants import CashbackRules
from qrpay.transactions.schemas import OperationKind, OperationStatus
from tests.support.orders import restaurant

D = Decimal
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
WAITING = OrderStatus.WAITING
PAYED = OrderStatus.PAYED
CANCELED = OrderStatus.CANCELED
CLOSED = OrderStatus.CLOSED
HOLD, CLEAR, UNHOLD = OperationKind.HOLD, OperationKind.CLEAR, OperationKind.UNHOLD
OK, FAILED, PENDING = OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.PENDING


@pytest.mark.parametrize(
    ("bill", "rate", "cap", "rules", "expected"),
    [
        ("1000", "30", None, CashbackRules(), "300"),
        ("99.99", "30", None, CashbackRules(), "29"),  # 29.997 rounds DOWN
        ("99.99", "30", None, CashbackRules(rounding_places=2), "29.99"),
        ("3.33", "10", None, CashbackRules(rounding_places=1), "0.3"),
        ("100000", "30", "3000", CashbackRules(), "3000"),  # the restaurant's cap
        ("100000", "30", None, CashbackRules(default_cap=D("500")), "500"),  # default cap
        ("100000", "30", "3000", CashbackRules(default_cap=D("500")), "3000"),  # own cap wins
        ("2", "30", None, CashbackRules(), "0"),  # 0.6 rounds down to zero
        ("1000", "0", None, CashbackRules(), "0"),
        ("1000", "30", "0", CashbackRules(), "0"),
        ("1000", "12.5", None, CashbackRules(), "125"),
    ],
)
def test_cashback_amount(
    bill: str, rate: str, cap: str | None, rules: CashbackRules, expected: str
) -> None:
    amount = domain.cashback_amount(D(bill), restaurant(rate, cap), rules)
    assert domain.cashback_text(amount) == expected


def test_cashback_of_an_unknown_restaurant_is_zero() -> None:
    assert domain.cashback_amount(D("1000"), None, CashbackRules()) == 0
    assert domain.rate_text(None) == "0%"
    assert domain.rate_text(restaurant("30")) == "30%"


HOLDING, CLEARING, ROLLING_BACK = (
    PaymentState.HOLDING,
    PaymentState.CLEARING,
    PaymentState.ROLLING_BACK,
)
PAID, RELEASED = PaymentState.PAID, PaymentState.RELEASED

W, P, DEC = GuestStatus.WAITING, GuestStatus.PAYED, GuestStatus.DECLINED

# order status, the state of the payment the guest follows (None: the order has none)
# -> what the guest sees
GUEST_VIEWS = [
    # no payment: the order's status says it
    (WAITING, None, (W, MessageKey.READY)),
    (PAYED, None, (P, MessageKey.PAYED)),
    (CANCELED, None, (DEC, MessageKey.CLOSED)),
    (CLOSED, None, (DEC, MessageKey.CLOSED)),
    # a payment paid is the guest's: PAYED even if the order is not yet (a share)
    (WAITING, PAID, (P, MessageKey.PAYED)),
    (PAYED, PAID, (P, MessageKey.PAYED)),
    (CLOSED, PAID, (P, MessageKey.PAYED)),
    (CANCELED, PAID, (P, MessageKey.PAYED)),
    # a payment under way, in any phase, is waited for, whatever the order's status
    *(
        (status, state, (W, MessageKey.IN_PROGRESS))
        for status in (WAITING, IN_PROGRESS)
        for state in (HOLDING, CLEARING, ROLLING_BACK)
    ),
    # (its money is still held: its callback or the sweep settles it)
    (CANCELED, HOLDING, (W, MessageKey.IN_PROGRESS)),
    (CLOSED, HOLDING, (W, MessageKey.IN_PROGRESS)),
    (PAYED, HOLDING, (W, MessageKey.IN_PROGRESS)),
    # a payment given back: declined; on a closed order, "pay at the restaurant"
    (WAITING, RELEASED, (DEC, MessageKey.DECLINED)),
    (IN_PROGRESS, RELEASED, (DEC, MessageKey.DECLINED)),  # another guest's payment holds it
    (PAYED, RELEASED, (DEC, MessageKey.DECLINED)),  # this one failed, another paid the bill
    (CANCELED, RELEASED, (DEC, MessageKey.CLOSED)),
    (CLOSED, RELEASED, (DEC, MessageKey.CLOSED)),
]


@pytest.mark.parametrize(("status", "payment", "expected"), GUEST_VIEWS)
def test_guest_view(
    status: OrderStatus, payment: PaymentState | None, expected: tuple[GuestStatus, MessageKey]
) -> None:
    view = domain.guest_view(status, payment)
    assert (view.status, view.message) == expected


def test_every_pair_has_a_guest_view_row() -> None:
    rows = {(status, payment) for status, payment, _ in GUEST_VIEWS}
    missing = {
        (status, payment)
        for status in (WAITING, PAYED, CANCELED, CLOSED)
        for payment in (None, PAID, HOLDING, RELEASED)
    } - rows
    assert not missing


def test_language_and_messages() -> None:
    assert domain.language(None) == "ru"
    assert domain.language("en") == "en"
    assert domain.language("en-US") == "en"
    assert domain.language("de") == "ru"
    assert "cashback" in domain.message(MessageKey.PAYED, "en")
    assert "кэшбэк" in domain.message(MessageKey.PAYED, "ru")
    for texts in GUEST_MESSAGES.values():
        assert set(texts) == {"ru", "en"}


CANCELED_OP = OperationStatus.CANCELED
COMPLETE_AND_ACCRUE = Decision((Step.COMPLETE_PAYMENT, Step.ACCRUE_CASHBACK))

# kind, status, the payment's state in eda -> decision
DECISION_TABLE = [
    # A hold's own success: every hold is captured since issue 9, so this is an uncaptured
    # hold from before it, which nothing may clear now: released (the release gives the
    # payment back); a payment paid or claimed by an old clear is left to that clear.
    (HOLD, OK, HOLDING, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, ROLLING_BACK, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, RELEASED, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, CLEARING, Decision()),
    (HOLD, OK, PAID, Decision()),
    # hold failed: a live payment is given back and counted, once
    (HOLD, FAILED, HOLDING, Decision((Step.FAIL_PAYMENT,), problem="hold_failed")),
    (HOLD, FAILED, ROLLING_BACK, Decision((Step.FAIL_PAYMENT,), problem="hold_failed")),
    (HOLD, FAILED, CLEARING, Decision()),
    (HOLD, FAILED, RELEASED, Decision()),
    (HOLD, FAILED, PAID, Decision()),
    # clear succeeded: the payment is paid from whichever live state (a rollback that began
    # yields to the captured clear, fenced in transactions), and its cashback accrued
    (CLEAR, OK, HOLDING, COMPLETE_AND_ACCRUE),
    (CLEAR, OK, CLEARING, COMPLETE_AND_ACCRUE),
    (CLEAR, OK, ROLLING_BACK, COMPLETE_AND_ACCRUE),
    (CLEAR, OK, PAID, Decision((Step.ACCRUE_CASHBACK,))),  # a duplicate
    (CLEAR, OK, RELEASED, Decision(problem="cleared_unpaid")),
    # clear failed for good: never turned into a release
    (CLEAR, FAILED, HOLDING, Decision(problem="clear_failed")),
    (CLEAR, FAILED, CLEARING, Decision(problem="clear_failed")),
    (CLEAR, FAILED, ROLLING_BACK, Decision(problem="clear_failed")),
    (CLEAR, FAILED, RELEASED, Decision(problem="clear_failed")),
    (CLEAR, FAILED, PAID, Decision()),
    # unhold succeeded: a live payment is given back
    (UNHOLD, OK, HOLDING, Decision((Step.FAIL_PAYMENT,))),
    (UNHOLD, OK, ROLLING_BACK, Decision((Step.FAIL_PAYMENT,))),
    (UNHOLD, OK, CLEARING, Decision(problem="released_while_clearing")),
    (UNHOLD, OK, RELEASED, Decision()),
    (UNHOLD, OK, PAID, Decision()),
    # unhold failed: the hold stays on the card, try again
    *(
        (UNHOLD, FAILED, state, Decision((Step.RETRY,), problem="unhold_failed"))
        for state in (HOLDING, CLEARING, ROLLING_BACK, RELEASED)
    ),
    (UNHOLD, FAILED, PAID, Decision()),
    # a refund's outcome is the refund saga's (payments_eda.refunds): the payment stays paid
    *(
        (OperationKind.REFUND, status, state, Decision())
        for status in (OK, FAILED)
        for state in PaymentState
    ),
    # pending and canceled are not outcomes of money
    *(
        (kind, status, state, Decision())
        for kind in OperationKind
        for status in (PENDING, CANCELED_OP)
        for state in PaymentState
    ),
]


@pytest.mark.parametrize(("kind", "status", "state", "expected"), DECISION_TABLE)
def test_callback_decision_table(
    kind: OperationKind, status: OperationStatus, state: PaymentState, expected: Decision
) -> None:
    assert domain.decide(kind, status, state) == expected


def test_the_table_has_one_row_per_case() -> None:
    cases = [(kind, status, state) for kind, status, state, _ in DECISION_TABLE]
    assert len(cases) == len(set(cases))
    assert set(cases) == {
        (kind, status, state)
        for kind in OperationKind
        for status in OperationStatus
        for state in PaymentState
    }


def test_no_row_starts_a_clear() -> None:
    """Since issue 18 no callback starts a clear or claims one: every hold is captured, and
    transactions clears it in the hold's own pass."""
    assert {step.value for step in Step} == {
        "start_unhold",
        "fail_payment",
        "complete_payment",
        "accrue_cashback",
        "retry",
    }


def test_no_row_releases_money_a_clear_claimed() -> None:
    """With the payment's clear claimed (or done), no outcome starts an unhold or gives it back."""
    for kind in OperationKind:
        for status in OperationStatus:
            for state in (CLEARING, PAID):
                decision = domain.decide(kind, status, state)
                assert Step.START_UNHOLD not in decision.steps
                assert Step.FAIL_PAYMENT not in decision.steps


def test_money_is_only_ever_completed_after_a_clear() -> None:
    for kind in OperationKind:
        for status in OperationStatus:
            for state in PaymentState:
                decision = domain.decide(kind, status, state)
                if Step.COMPLETE_PAYMENT in decision.steps:
                    assert (kind, status) == (CLEAR, OK)


def test_operation_ids_derive_from_the_hold() -> None:
    assert domain.hold_of(HOLD, "p1", None) == "p1"
    assert domain.hold_of(CLEAR, "p1.clear", "p1") == "p1"
    assert domain.hold_of(UNHOLD, "p1.unhold", None) == ""
    assert domain.unhold_id("p1") == "p1.unhold"
