"""Voiding a hold: every state of the hold against the one void rule, and the late request."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from qrpay.kernel.errors import Conflict
from qrpay.transactions.domain import decide, derived_amounts, plan_void
from qrpay.transactions.schemas import OperationStatus, VoidOutcome
from tests.unit.transactions.test_domain import INVOICE, NOW, op, request  # the table's fixtures

RELEASE = "h1.unhold"


def test_a_hold_that_never_arrived_is_voided_for_good() -> None:
    plan = plan_void(INVOICE, [], "h1", RELEASE, NOW)
    assert plan.outcome is VoidOutcome.VOIDED
    assert plan.tombstone is not None
    assert plan.tombstone.status is OperationStatus.CANCELED
    # The late hold request with that id gets the canceled record back, never a new hold.
    late, created = decide(
        INVOICE,
        [plan.tombstone],
        request("h1", "hold", amount="100", payment_method={"id": "card-ok", "token": "t"}),
        NOW,
    )
    assert (late.status, created) == (OperationStatus.CANCELED, False)
    assert derived_amounts([plan.tombstone]).held == Decimal(0)


def test_a_pending_hold_not_yet_sent_is_canceled() -> None:
    hold = op("h1", status="pending")
    plan = plan_void(INVOICE, [hold], "h1", RELEASE, NOW)
    assert plan.outcome is VoidOutcome.VOIDED
    assert plan.cancel_pending == hold


def test_a_hold_at_the_gateway_without_an_answer_is_never_guessed() -> None:
    hold = replace(op("h1", status="pending"), attempts=1)
    plan = plan_void(INVOICE, [hold], "h1", RELEASE, NOW)
    assert plan == type(plan)(VoidOutcome.IN_FLIGHT)
    assert not plan.outcome.final


@pytest.mark.parametrize(
    ("ops", "outcome"),
    [
        ([op("h1", status="failed")], VoidOutcome.FAILED),
        ([op("h1", status="canceled")], VoidOutcome.VOIDED),
        ([op("h1"), op(RELEASE, "unhold", "pending", target="h1")], VoidOutcome.RELEASING),
        ([op("h1"), op(RELEASE, "unhold", "succeeded", target="h1")], VoidOutcome.RELEASED),
    ],
)
def test_settled_or_settling_holds(ops: list, outcome: VoidOutcome) -> None:
    plan = plan_void(INVOICE, ops, "h1", RELEASE, NOW)
    assert plan.outcome is outcome
    assert plan.tombstone is plan.cancel_pending is plan.release is None


def test_a_succeeded_hold_is_released_with_the_owners_unhold_id() -> None:
    plan = plan_void(INVOICE, [op("h1")], "h1", RELEASE, NOW)
    assert plan.outcome is VoidOutcome.RELEASING
    assert plan.release is not None
    assert (plan.release.operation_id, plan.release.target) == (RELEASE, "h1")


@pytest.mark.parametrize("status", ["pending", "succeeded"])
def test_a_hold_being_cleared_cannot_be_voided(status: str) -> None:
    ops = [op("h1"), op("h1.clear", "clear", status, target="h1")]
    with pytest.raises(Conflict) as caught:
        plan_void(INVOICE, ops, "h1", RELEASE, NOW)
    assert caught.value.code == "hold_clearing"
