from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from qrpay.eda.schemas import OrderStatus, PaymentPhase
from qrpay.kernel.config import CashbackRules, Restaurant
from qrpay.payments_eda import domain
from qrpay.payments_eda.domain import Decision, GuestStatus, MessageKey, Step
from qrpay.transactions.schemas import Operation, OperationKind, OperationStatus

D = Decimal
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
WAITING = OrderStatus.WAITING
PAYED = OrderStatus.PAYED
CANCELED = OrderStatus.CANCELED
HOLD, CLEAR, UNHOLD = OperationKind.HOLD, OperationKind.CLEAR, OperationKind.UNHOLD
OK, FAILED, PENDING = OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.PENDING


def restaurant(rate: str = "30", cap: str | None = None) -> Restaurant:
    return Restaurant(
        client_id="rest-1",
        name="Café",
        zone="moscow",
        cashback_rate=D(rate),
        cashback_cap=None if cap is None else D(cap),
    )


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


def op(
    op_id: str,
    kind: OperationKind,
    status: OperationStatus,
    *,
    target: str | None = None,
    minute: int = 0,
) -> Operation:
    return Operation(
        operation_id=op_id,
        kind=kind,
        status=status,
        amount="100.00",
        currency="RUB",
        target=target,
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute),
    )


@pytest.mark.parametrize(
    ("operations", "failed"),
    [
        ([], False),
        ([op("p1", HOLD, PENDING)], False),
        ([op("p1", HOLD, FAILED)], True),
        ([op("p1", HOLD, FAILED), op("p2", HOLD, OK, minute=1)], False),
        ([op("p1", HOLD, OK), op("p2", HOLD, FAILED, minute=1)], True),
        ([op("p1", HOLD, OK), op("p1.unhold", UNHOLD, OK, target="p1")], True),
        ([op("p1", HOLD, OK), op("p1.clear", CLEAR, FAILED, target="p1")], True),
        ([op("p1", HOLD, OK), op("p1.clear", CLEAR, OK, target="p1")], False),
    ],
)
def test_last_attempt_failed(operations: list[Operation], failed: bool) -> None:
    assert domain.last_attempt_failed(operations) is failed


@pytest.mark.parametrize(
    ("status", "last_failed", "expected"),
    [
        (PAYED, False, (GuestStatus.PAYED, MessageKey.PAYED)),
        (PAYED, True, (GuestStatus.PAYED, MessageKey.PAYED)),
        (IN_PROGRESS, True, (GuestStatus.WAITING, MessageKey.IN_PROGRESS)),
        (WAITING, False, (GuestStatus.WAITING, MessageKey.READY)),
        (WAITING, True, (GuestStatus.DECLINED, MessageKey.DECLINED)),
        (CANCELED, False, (GuestStatus.DECLINED, MessageKey.CLOSED)),
    ],
)
def test_guest_status_mapping(
    status: OrderStatus, last_failed: bool, expected: tuple[GuestStatus, MessageKey]
) -> None:
    view = domain.guest_view(status, last_failed=last_failed)
    assert (view.status, view.message) == expected


def test_language_and_messages() -> None:
    assert domain.language(None) == "ru"
    assert domain.language("en") == "en"
    assert domain.language("en-US") == "en"
    assert domain.language("de") == "ru"
    assert "cashback" in domain.message(MessageKey.PAYED, "en")
    assert "кэшбэк" in domain.message(MessageKey.PAYED, "ru")
    for texts in domain.MESSAGES.values():
        assert set(texts) == {"ru", "en"}


MINE, OTHER = "p1", "p2"
HOLDING, CLEARING, ROLLING_BACK = (
    PaymentPhase.HOLDING,
    PaymentPhase.CLEARING,
    PaymentPhase.ROLLING_BACK,
)
CANCELED_OP = OperationStatus.CANCELED

# kind, status, order status, its payment phase, its payment id -> decision
DECISION_TABLE = [
    # hold succeeded: the clear claims the order first
    (HOLD, OK, IN_PROGRESS, HOLDING, MINE, Decision((Step.CLAIM_CLEAR, Step.START_CLEAR))),
    (HOLD, OK, IN_PROGRESS, CLEARING, MINE, Decision((Step.START_CLEAR,))),
    (HOLD, OK, IN_PROGRESS, ROLLING_BACK, MINE, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, PAYED, None, MINE, Decision()),
    (HOLD, OK, CANCELED, None, None, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, WAITING, None, None, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, IN_PROGRESS, HOLDING, OTHER, Decision((Step.START_UNHOLD,))),
    (HOLD, OK, PAYED, None, OTHER, Decision((Step.START_UNHOLD,))),
    # hold failed
    (
        HOLD,
        FAILED,
        IN_PROGRESS,
        HOLDING,
        MINE,
        Decision((Step.FAIL_PAYMENT,), problem="hold_failed"),
    ),
    (
        HOLD,
        FAILED,
        IN_PROGRESS,
        ROLLING_BACK,
        MINE,
        Decision((Step.FAIL_PAYMENT,), problem="hold_failed"),
    ),
    (HOLD, FAILED, WAITING, None, None, Decision()),
    (HOLD, FAILED, IN_PROGRESS, HOLDING, OTHER, Decision()),
    (HOLD, FAILED, CANCELED, None, None, Decision()),
    # clear succeeded: the payment is PAYED from whichever phase (claimed in eda, or captured
    # and fenced in transactions, where a rollback that began yields to it)
    *(
        (
            CLEAR,
            OK,
            IN_PROGRESS,
            phase,
            MINE,
            Decision((Step.COMPLETE_PAYMENT, Step.ACCRUE_CASHBACK)),
        )
        for phase in (CLEARING, HOLDING, ROLLING_BACK)
    ),
    (CLEAR, OK, IN_PROGRESS, HOLDING, OTHER, Decision(problem="cleared_unpaid")),
    (CLEAR, OK, PAYED, None, MINE, Decision((Step.ACCRUE_CASHBACK,))),
    (CLEAR, OK, WAITING, None, None, Decision(problem="cleared_unpaid")),
    # clear failed for good: never turned into a release
    (CLEAR, FAILED, IN_PROGRESS, CLEARING, MINE, Decision(problem="clear_failed")),
    (CLEAR, FAILED, WAITING, None, None, Decision(problem="clear_failed")),
    (CLEAR, FAILED, PAYED, None, MINE, Decision()),
    # unhold succeeded
    (UNHOLD, OK, IN_PROGRESS, ROLLING_BACK, MINE, Decision((Step.FAIL_PAYMENT,))),
    (UNHOLD, OK, IN_PROGRESS, HOLDING, MINE, Decision((Step.FAIL_PAYMENT,))),
    (UNHOLD, OK, IN_PROGRESS, CLEARING, MINE, Decision(problem="released_while_clearing")),
    (UNHOLD, OK, WAITING, None, None, Decision()),
    (UNHOLD, OK, CANCELED, None, None, Decision()),
    (UNHOLD, OK, IN_PROGRESS, HOLDING, OTHER, Decision()),
    # unhold failed
    (UNHOLD, FAILED, WAITING, None, None, Decision((Step.RETRY,), problem="unhold_failed")),
    (UNHOLD, FAILED, CANCELED, None, None, Decision((Step.RETRY,), problem="unhold_failed")),
    (UNHOLD, FAILED, PAYED, None, MINE, Decision()),
    # pending and canceled are not outcomes of money
    (HOLD, PENDING, IN_PROGRESS, HOLDING, MINE, Decision()),
    (CLEAR, PENDING, IN_PROGRESS, CLEARING, MINE, Decision()),
    (HOLD, CANCELED_OP, IN_PROGRESS, ROLLING_BACK, MINE, Decision()),
]


@pytest.mark.parametrize(
    ("kind", "status", "order_status", "phase", "payment_id", "expected"), DECISION_TABLE
)
def test_callback_decision_table(
    kind: OperationKind,
    status: OperationStatus,
    order_status: OrderStatus,
    phase: PaymentPhase | None,
    payment_id: str | None,
    expected: Decision,
) -> None:
    decision = domain.decide(
        kind,
        status,
        hold_id=MINE,
        order_status=order_status,
        order_payment_id=payment_id,
        order_phase=phase,
    )
    assert decision == expected


def test_no_row_releases_money_a_clear_claimed() -> None:
    """With the order's clear claimed, no outcome starts an unhold or gives the order back."""
    for kind in OperationKind:
        for status in OperationStatus:
            decision = domain.decide(
                kind,
                status,
                hold_id=MINE,
                order_status=IN_PROGRESS,
                order_payment_id=MINE,
                order_phase=CLEARING,
            )
            assert Step.START_UNHOLD not in decision.steps
            assert Step.FAIL_PAYMENT not in decision.steps


def test_operation_ids_derive_from_the_hold() -> None:
    assert domain.hold_of(HOLD, "p1", None) == "p1"
    assert domain.hold_of(CLEAR, "p1.clear", "p1") == "p1"
    assert domain.clear_id("p1") == "p1.clear"
    assert domain.unhold_id("p1") == "p1.unhold"
