"""The operation rules as a table, and amounts derived from the operation log."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from qrpay.kernel.errors import Conflict, InvalidInput
from qrpay.transactions.domain import (
    InvoiceRecord,
    OperationRecord,
    auto_release_request,
    backoff_seconds,
    decide,
    derived_amounts,
    hold_expired,
    is_live_hold,
    plan_void,
    refund_room,
    retries_refusal,
)
from qrpay.transactions.schemas import OperationIn, OperationKind, OperationStatus

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
INVOICE = InvoiceRecord(
    invoice_id="inv-1",
    owner="payments-eda",
    order_id="order-1",
    user_id="user-1",
    currency="RUB",
    callback_queue="payments_eda",
    callback_task="transaction_callback",
    created_at=NOW,
)
CARD = {"id": "card-ok", "token": "sandbox-ok-4242"}


def op(
    operation_id: str,
    kind: str = "hold",
    status: str = "succeeded",
    amount: str = "100",
    target: str | None = None,
    finished_at: datetime | None = NOW,
) -> OperationRecord:
    return OperationRecord(
        invoice_id="inv-1",
        operation_id=operation_id,
        kind=OperationKind(kind),
        status=OperationStatus(status),
        amount=Decimal(amount),
        currency="RUB",
        target=target,
        payment_method_id="card-ok",
        token="sandbox-ok-4242",
        created_at=NOW,
        finished_at=None if status == "pending" else finished_at,
    )


def request(operation_id: str, kind: str, **fields: Any) -> OperationIn:
    return OperationIn.model_validate({"operation_id": operation_id, "kind": kind, **fields})


HOLD_OK = {"amount": "100.50", "payment_method": CARD}

# (name, existing operations, request, expected error code or None)
RULES: list[tuple[str, list[OperationRecord], OperationIn, str | None]] = [
    ("first hold", [], request("h2", "hold", **HOLD_OK), None),
    ("hold without amount", [], request("h2", "hold", payment_method=CARD), "amount_required"),
    (
        "hold of zero",
        [],
        request("h2", "hold", amount="0", payment_method=CARD),
        "amount_not_positive",
    ),
    (
        "hold with 3 digits",
        [],
        request("h2", "hold", amount="1.005", payment_method=CARD),
        "invalid_amount",
    ),
    ("hold without card", [], request("h2", "hold", amount="1"), "payment_method_required"),
    ("hold with a target", [], request("h2", "hold", target="h1", **HOLD_OK), "unexpected_target"),
    (
        "hold while one pending",
        [op("h1", status="pending")],
        request("h2", "hold", **HOLD_OK),
        "hold_active",
    ),
    ("hold while one held", [op("h1")], request("h2", "hold", **HOLD_OK), "hold_active"),
    (
        "hold while one being cleared",
        [op("h1"), op("c1", "clear", "pending", target="h1")],
        request("h2", "hold", **HOLD_OK),
        "hold_active",
    ),
    (
        "hold after a failed one",
        [op("h1", status="failed")],
        request("h2", "hold", **HOLD_OK),
        None,
    ),
    (
        "hold after a cleared one",
        [op("h1"), op("c1", "clear", target="h1")],
        request("h2", "hold", **HOLD_OK),
        None,
    ),
    (
        "hold after a released one",
        [op("h1"), op("u1", "unhold", target="h1")],
        request("h2", "hold", **HOLD_OK),
        None,
    ),
    ("clear a held hold", [op("h1")], request("c1", "clear", target="h1"), None),
    ("clear part of it", [op("h1")], request("c1", "clear", target="h1", amount="40"), None),
    (
        "clear more than held",
        [op("h1")],
        request("c1", "clear", target="h1", amount="101"),
        "amount_exceeds_hold",
    ),
    ("clear without target", [op("h1")], request("c1", "clear"), "target_required"),
    (
        "clear an unknown hold",
        [op("h1")],
        request("c1", "clear", target="nope"),
        "nothing_to_clear",
    ),
    (
        "clear a pending hold",
        [op("h1", status="pending")],
        request("c1", "clear", target="h1"),
        "nothing_to_clear",
    ),
    (
        "clear a failed hold",
        [op("h1", status="failed")],
        request("c1", "clear", target="h1"),
        "nothing_to_clear",
    ),
    (
        "clear twice",
        [op("h1"), op("c1", "clear", target="h1")],
        request("c2", "clear", target="h1"),
        "nothing_to_clear",
    ),
    (
        "clear while being released",
        [op("h1"), op("u1", "unhold", "pending", target="h1")],
        request("c1", "clear", target="h1"),
        "nothing_to_clear",
    ),
    (
        "clear after a failed clear",
        [op("h1"), op("c1", "clear", "failed", target="h1")],
        request("c2", "clear", target="h1"),
        None,
    ),
    ("unhold a held hold", [op("h1")], request("u1", "unhold", target="h1"), None),
    (
        "unhold a cleared hold",
        [op("h1"), op("c1", "clear", target="h1")],
        request("u1", "unhold", target="h1"),
        "nothing_to_release",
    ),
    (
        "unhold part of it",
        [op("h1")],
        request("u1", "unhold", target="h1", amount="5"),
        "amount_mismatch",
    ),
    (
        "repeat of a hold",
        [op("h1")],
        request("h1", "hold", amount="100.00", payment_method=CARD),
        None,
    ),
    (
        "repeat with another amount",
        [op("h1")],
        request("h1", "hold", amount="99", payment_method=CARD),
        "operation_mismatch",
    ),
    (
        "repeat as another kind",
        [op("h1")],
        request("h1", "clear", target="h1"),
        "operation_mismatch",
    ),
    (
        "repeat of a clear",
        [op("h1"), op("c1", "clear", target="h1")],
        request("c1", "clear", target="h1"),
        None,
    ),
    (
        "repeat of a clear, other target",
        [op("h1"), op("c1", "clear", target="h1")],
        request("c1", "clear", target="h0"),
        "operation_mismatch",
    ),
]


@pytest.mark.parametrize(
    ("existing", "req", "error"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_rules(existing: list[OperationRecord], req: OperationIn, error: str | None) -> None:
    check_rule(existing, req, error)


def check_rule(existing: list[OperationRecord], req: OperationIn, error: str | None) -> None:
    if error is None:
        result, created = decide(INVOICE, existing, req, NOW)
        assert result.operation_id == req.operation_id
        assert created == (req.operation_id not in {o.operation_id for o in existing})
        if created:
            assert result.status == OperationStatus.PENDING
    else:
        with pytest.raises((Conflict, InvalidInput)) as caught:
            decide(INVOICE, existing, req, NOW)
        assert caught.value.code == error


def test_clear_defaults_to_the_hold_and_inherits_its_card() -> None:
    clear, created = decide(
        INVOICE, [op("h1", amount="250.5")], request("c1", "clear", target="h1"), NOW
    )
    assert created
    assert clear.amount_text == "250.50"
    assert clear.token == "sandbox-ok-4242"
    assert clear.target == "h1"
    assert clear.idempotency_key == "inv-1:c1"


def test_a_new_hold_is_pending_with_a_canonical_amount() -> None:
    hold, _ = decide(INVOICE, [], request("h1", "hold", amount="7.5", payment_method=CARD), NOW)
    assert hold.amount_text == "7.50"
    assert hold.token == "sandbox-ok-4242"
    assert hold.payment_method_id == "card-ok"


@pytest.mark.parametrize(
    ("ops", "held", "cleared", "released"),
    [
        ([], "0", "0", "0"),
        ([op("h1", status="pending")], "0", "0", "0"),
        ([op("h1", status="failed")], "0", "0", "0"),
        ([op("h1")], "100", "0", "0"),
        ([op("h1"), op("c1", "clear", "pending", target="h1")], "100", "0", "0"),
        ([op("h1"), op("c1", "clear", "failed", target="h1")], "100", "0", "0"),
        ([op("h1"), op("c1", "clear", target="h1")], "0", "100", "0"),
        ([op("h1"), op("c1", "clear", amount="30", target="h1")], "0", "30", "70"),
        ([op("h1"), op("u1", "unhold", target="h1")], "0", "0", "100"),
        (
            [op("h1"), op("u1", "unhold", target="h1"), op("h2", amount="50")],
            "50",
            "0",
            "100",
        ),
    ],
)
def test_derived_amounts(
    ops: list[OperationRecord], held: str, cleared: str, released: str
) -> None:
    amounts = derived_amounts(ops)
    assert (amounts.held, amounts.cleared, amounts.released) == (
        Decimal(held),
        Decimal(cleared),
        Decimal(released),
    )


def test_live_holds() -> None:
    assert is_live_hold(op("h1", status="pending"), [])
    assert is_live_hold(op("h1"), [op("h1")])
    assert not is_live_hold(op("h1", status="failed"), [])
    cleared = [op("h1"), op("c1", "clear", target="h1")]
    assert not is_live_hold(cleared[0], cleared)


def test_hold_expiry() -> None:
    hold = op("h1", finished_at=NOW)
    ttl = 3600
    assert not hold_expired(hold, [hold], NOW + timedelta(seconds=ttl - 1), ttl)
    assert hold_expired(hold, [hold], NOW + timedelta(seconds=ttl), ttl)
    being_cleared = [hold, op("c1", "clear", "pending", target="h1")]
    assert not hold_expired(hold, being_cleared, NOW + timedelta(days=9), ttl)
    failed_clear = [hold, op("c1", "clear", "failed", target="h1")]
    assert hold_expired(hold, failed_clear, NOW + timedelta(days=9), ttl)
    release, created = decide(INVOICE, [hold], auto_release_request(hold), NOW)
    assert created
    assert release.operation_id == "auto-release:h1"
    assert release.kind == OperationKind.UNHOLD
    assert release.amount == hold.amount


FAILED = OperationStatus.FAILED
SUCCEEDED = OperationStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("kind", "refusals", "status", "retried"),
    [
        ("clear", 0, FAILED, True),
        ("clear", 3, FAILED, True),  # the 4th refusal of 5 tries: one try left
        ("clear", 4, FAILED, False),  # the 5th refusal: the last try, the clear fails
        ("clear", 0, SUCCEEDED, False),
        ("unhold", 0, FAILED, False),  # a release is not retried under a new key
        ("hold", 0, FAILED, False),  # a declined hold is the guest's answer
    ],
)
def test_only_a_refused_clear_with_tries_left_is_retried(
    kind: str, refusals: int, status: OperationStatus, retried: bool
) -> None:
    clear = replace(op("c1", kind, "pending", target="h1"), refusals=refusals)
    assert retries_refusal(clear, status, clear_attempts=5) is retried


def test_a_single_try_is_never_retried() -> None:
    assert not retries_refusal(op("c1", "clear", "pending", target="h1"), FAILED, 1)


def test_each_try_of_a_clear_has_its_own_key_from_our_ids() -> None:
    clear = op("h1.clear", "clear", "pending", target="h1")
    assert clear.idempotency_key == "inv-1:h1.clear"
    assert replace(clear, refusals=1).idempotency_key == "inv-1:h1.clear:2"
    assert replace(clear, refusals=4).idempotency_key == "inv-1:h1.clear:5"


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 30) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_a_clear_in_retry_still_fences_the_hold() -> None:
    hold = op("h1")
    in_retry = replace(op("h1.clear", "clear", "pending", target="h1"), refusals=2)
    ops = [hold, in_retry]
    with pytest.raises(Conflict) as refused:
        plan_void(INVOICE, ops, "h1", "h1.unhold", NOW)
    assert refused.value.code == "hold_clearing"
    assert not hold_expired(hold, ops, NOW + timedelta(days=9), 3600)
    assert is_live_hold(hold, ops)


CLEARED = [op("h1"), op("c1", "clear", target="h1")]


def refund(operation_id: str, amount: str | None = "40", target: str = "h1") -> OperationIn:
    fields = {"target": target} if amount is None else {"target": target, "amount": amount}
    return request(operation_id, "refund", **fields)


def refunded(operation_id: str, amount: str, status: str = "succeeded") -> OperationRecord:
    return op(operation_id, "refund", status, amount=amount, target="h1")


REFUND_RULES: list[tuple[str, list[OperationRecord], OperationIn, str | None]] = [
    ("refund part of a cleared hold", CLEARED, refund("r1.1"), None),
    ("refund all of it", CLEARED, refund("r1.1", "100.00"), None),
    ("refund more than cleared", CLEARED, refund("r1.1", "100.01"), "refund_exceeds_cleared"),
    (
        "refund more than a partial clear",
        [op("h1"), op("c1", "clear", amount="30", target="h1")],
        refund("r1.1", "31"),
        "refund_exceeds_cleared",
    ),
    ("refund without amount", CLEARED, refund("r1.1", None), "amount_required"),
    ("refund of zero", CLEARED, refund("r1.1", "0"), "amount_not_positive"),
    ("refund with 3 digits", CLEARED, refund("r1.1", "1.005"), "invalid_amount"),
    ("refund without target", CLEARED, request("r1.1", "refund", amount="1"), "target_required"),
    (
        "refund captured",
        CLEARED,
        request("r1.1", "refund", target="h1", amount="1", capture=True),
        "unexpected_capture",
    ),
    ("refund of a held, uncleared hold", [op("h1")], refund("r1.1"), "nothing_to_refund"),
    (
        "refund of a pending hold",
        [op("h1", "hold", "pending")],
        refund("r1.1"),
        "nothing_to_refund",
    ),
    ("refund of a failed hold", [op("h1", "hold", "failed")], refund("r1.1"), "nothing_to_refund"),
    (
        "refund while the clear is pending",
        [op("h1"), op("c1", "clear", "pending", target="h1")],
        refund("r1.1"),
        "nothing_to_refund",
    ),
    (
        "refund after the clear failed",
        [op("h1"), op("c1", "clear", "failed", target="h1")],
        refund("r1.1"),
        "nothing_to_refund",
    ),
    (
        "refund of a released hold",
        [op("h1"), op("u1", "unhold", target="h1")],
        refund("r1.1"),
        "nothing_to_refund",
    ),
    ("refund of an unknown hold", CLEARED, refund("r1.1", target="h9"), "nothing_to_refund"),
    ("refund naming the clear", CLEARED, refund("r1.1", target="c1"), "nothing_to_refund"),
    (
        "partial refunds summing to what was cleared",
        [*CLEARED, refunded("r1.1", "60"), refunded("r2.1", "30", "pending")],
        refund("r3.1", "10"),
        None,
    ),
    (
        "a pending refund counts",
        [*CLEARED, refunded("r1.1", "60", "pending")],
        refund("r2.1", "40.01"),
        "refund_exceeds_cleared",
    ),
    (
        "a succeeded refund counts",
        [*CLEARED, refunded("r1.1", "60"), refunded("r2.1", "30")],
        refund("r3.1", "10.01"),
        "refund_exceeds_cleared",
    ),
    (
        "a failed refund gives its room back",
        [*CLEARED, refunded("r1.1", "60", "failed")],
        refund("r2.1", "100"),
        None,
    ),
    (
        "refunds of another hold do not count",
        [
            op("h0"),
            op("c0", "clear", target="h0"),
            op("r0.1", "refund", amount="100", target="h0"),
            *CLEARED,
        ],
        refund("r1.1", "100"),
        None,
    ),
    ("repeat of a refund", [*CLEARED, refunded("r1.1", "40")], refund("r1.1", "40.00"), None),
    (
        "repeat of a refund that filled the room",
        [*CLEARED, refunded("r1.1", "100", "pending")],
        refund("r1.1", "100"),
        None,
    ),
    (
        "repeat of a refund, other amount",
        [*CLEARED, refunded("r1.1", "40")],
        refund("r1.1", "41"),
        "operation_mismatch",
    ),
    (
        "repeat of a refund, no amount",
        [*CLEARED, refunded("r1.1", "40")],
        refund("r1.1", None),
        "operation_mismatch",
    ),
    (
        "repeat of a refund, other target",
        [*CLEARED, op("h0"), refunded("r1.1", "40")],
        refund("r1.1", "40", target="h0"),
        "operation_mismatch",
    ),
    (
        "repeat of a refund as a clear",
        [*CLEARED, refunded("r1.1", "40")],
        request("r1.1", "clear", target="h1", amount="40"),
        "operation_mismatch",
    ),
    (
        "a refund id already used by a clear",
        CLEARED,
        refund("c1", "40"),
        "operation_mismatch",
    ),
]


@pytest.mark.parametrize(
    ("existing", "req", "error"),
    [r[1:] for r in REFUND_RULES],
    ids=[r[0] for r in REFUND_RULES],
)
def test_refund_rules(existing: list[OperationRecord], req: OperationIn, error: str | None) -> None:
    check_rule(existing, req, error)


def test_a_refund_acts_on_the_holds_payment_under_its_own_key() -> None:
    hold = replace(op("h1"), reference="sbx-payment-1")
    ops = [hold, replace(op("c1", "clear", target="h1"), reference="sbx-capture-1")]
    new, created = decide(INVOICE, ops, refund("r1.1", "40.5"), NOW)
    assert created
    assert (new.kind, new.status, new.amount_text) == (
        OperationKind.REFUND,
        OperationStatus.PENDING,
        "40.50",
    )
    assert (new.target, new.reference, new.token) == ("h1", "sbx-payment-1", "sandbox-ok-4242")
    assert new.idempotency_key == "inv-1:r1.1"
    # A refund neither settles nor revives the hold.
    with_refund = [*ops, new]
    assert not is_live_hold(hold, with_refund)
    assert not hold_expired(hold, with_refund, NOW + timedelta(days=9), 3600)


def test_refund_room_is_the_cleared_amount_less_refunds_that_may_succeed() -> None:
    hold = op("h1")
    assert refund_room(hold, [hold]) is None
    partial = [hold, op("c1", "clear", amount="70", target="h1")]
    assert refund_room(hold, partial) == Decimal(70)
    taken = [*partial, refunded("r1.1", "20"), refunded("r2.1", "5", "pending")]
    assert refund_room(hold, [*taken, refunded("r3.1", "40", "failed")]) == Decimal(45)


@pytest.mark.parametrize(
    ("refunds", "expected"),
    [
        ([], "0"),
        ([refunded("r1.1", "40", "pending")], "0"),
        ([refunded("r1.1", "40", "failed")], "0"),
        ([refunded("r1.1", "40"), refunded("r2.1", "25.5")], "65.5"),
    ],
)
def test_derived_refunded_counts_succeeded_refunds_and_leaves_cleared_as_is(
    refunds: list[OperationRecord], expected: str
) -> None:
    amounts = derived_amounts([*CLEARED, *refunds])
    assert (amounts.held, amounts.cleared, amounts.released) == (0, 100, 0)
    assert amounts.refunded == Decimal(expected)
