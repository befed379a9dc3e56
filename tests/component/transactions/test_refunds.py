"""Refunds of a cleared hold through the HTTP API, with the sandbox gateway.

Background jobs are off and the clock is frozen: each test drives the relay itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.transactions.gateway import (
    FAILING_REFUND_PREFIX,
    FAILING_REFUND_REASON,
    SLOW_REFUND_PREFIX,
    SandboxGateway,
)
from tests.support.component.transactions import OK, Transactions, metric, running_transactions

FAILING = {"id": "card-failing-refund", "token": f"{FAILING_REFUND_PREFIX}4000"}
SLOW = {"id": "card-slow-refund", "token": f"{SLOW_REFUND_PREFIX}4001"}
RETRY_CAP = 4


@pytest.fixture
async def tx(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Transactions]:
    async with running_transactions(tmp_path, frozen_clock, retry_cap_seconds=RETRY_CAP) as env:
        yield env


def sandbox(tx: Transactions) -> SandboxGateway:
    gateway = tx.service.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


async def cleared_hold(tx: Transactions, card: dict[str, str] = OK, clear: str = "100") -> None:
    """Hold h1 of 100 with ``card`` and clear ``clear`` of it, both succeeded."""
    assert (await tx.invoice()).status_code == 200
    assert (await tx.hold("h1", card=card)).status_code == 200
    await tx.service.relay_once()
    started = await tx.operation(operation_id="h1.clear", kind="clear", target="h1", amount=clear)
    assert started.status_code == 200, started.text
    await tx.service.relay_once()
    assert (await tx.get())["cleared"] == f"{clear}.00"


async def refund(tx: Transactions, operation_id: str, amount: str | None, **extra: Any) -> Any:
    body: dict[str, Any] = {"operation_id": operation_id, "kind": "refund", "target": "h1"}
    if amount is not None:
        body["amount"] = amount
    response: httpx.Response = await tx.operation(**body, **extra)
    return response


def refused(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


async def refunds(tx: Transactions) -> dict[str, tuple[str, str, str | None]]:
    return {
        o["operation_id"]: (o["status"], o["amount"], o["reason"])
        for o in (await tx.get())["operations"]
        if o["kind"] == "refund"
    }


def callbacks(tx: Transactions) -> dict[str, dict[str, Any]]:
    return {job["queueing_lock"]: job["args"] for job in tx.jobs()}


async def test_a_refund_of_a_cleared_hold_succeeds_and_the_owner_is_told(
    tx: Transactions,
) -> None:
    await cleared_hold(tx)
    started = await refund(tx, "r1.1", "40")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "pending"
    assert (await tx.get())["refunded"] == "0.00"  # nothing given back yet

    await tx.service.relay_once()

    assert await refunds(tx) == {"r1.1": ("succeeded", "40.00", None)}
    invoice = await tx.get()
    assert (invoice["cleared"], invoice["refunded"]) == ("100.00", "40.00")
    assert ("refund", "inv-1:r1.1") in sandbox(tx).calls
    task = callbacks(tx)["inv-1:r1.1:succeeded"]
    assert {k: task[k] for k in ("kind", "status", "amount", "currency", "target")} == {
        "kind": "refund",
        "status": "succeeded",
        "amount": "40.00",
        "currency": "RUB",
        "target": "h1",
    }
    assert task["order_id"] == "order-1"
    assert tx.jobs()[-1]["task_name"] == "transaction_callback"
    assert await metric(tx, "qrpay_transactions_refunds_total", outcome="succeeded") == 1
    assert await metric(tx, "qrpay_transactions_refunds_total", outcome="failed") == 0
    refunded = "qrpay_transactions_refunded_minor_units_total"
    assert await metric(tx, refunded, currency="RUB") == 4000
    # Once: another relay pass neither calls the gateway again nor reports again.
    await tx.service.relay_once()
    assert sandbox(tx).calls.count(("refund", "inv-1:r1.1")) == 1
    assert len([k for k in callbacks(tx) if k.startswith("inv-1:r1.1:")]) == 1


async def test_partial_refunds_up_to_what_was_cleared_and_not_a_cent_more(
    tx: Transactions,
) -> None:
    await cleared_hold(tx, clear="90")  # 10 of the 100 held was let go
    assert (await refund(tx, "r1.1", "50")).status_code == 200
    assert (await refund(tx, "r2.1", "40")).status_code == 200  # pending ones count too
    assert refused(await refund(tx, "r3.1", "0.01")) == (409, "refund_exceeds_cleared")
    # A repeat is the same operation, even with no room left; another body is refused.
    again = await refund(tx, "r1.1", "50.00")
    assert (again.status_code, again.json()["operation_id"]) == (200, "r1.1")
    assert refused(await refund(tx, "r1.1", "49")) == (409, "operation_mismatch")
    assert refused(await refund(tx, "h1.clear", "1")) == (409, "operation_mismatch")

    await tx.service.relay_once()

    invoice = await tx.get()
    assert (invoice["cleared"], invoice["released"], invoice["refunded"]) == (
        "90.00",
        "10.00",
        "90.00",
    )
    assert sorted(k for k in callbacks(tx) if ":r" in k) == [
        "inv-1:r1.1:succeeded",
        "inv-1:r2.1:succeeded",
    ]
    assert refused(await refund(tx, "r3.1", "0.01")) == (409, "refund_exceeds_cleared")
    refunded = "qrpay_transactions_refunded_minor_units_total"
    assert await metric(tx, refunded, currency="RUB") == 9000


async def test_refunds_the_hold_cannot_have_are_refused(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    assert refused(await refund(tx, "r1.1", "10")) == (409, "nothing_to_refund")  # held only
    clear = await tx.operation(operation_id="h1.clear", kind="clear", target="h1")
    assert clear.status_code == 200
    assert refused(await refund(tx, "r1.1", "10")) == (409, "nothing_to_refund")  # clearing
    await tx.service.relay_once()
    assert refused(await refund(tx, "r1.1", None)) == (400, "amount_required")
    assert refused(await refund(tx, "r1.1", "0")) == (400, "amount_not_positive")
    no_target = await tx.operation(operation_id="r1.1", kind="refund", amount="1")
    assert refused(no_target) == (400, "target_required")
    other = await tx.operation(operation_id="r1.1", kind="refund", target="h9", amount="1")
    assert refused(other) == (409, "nothing_to_refund")
    # None of them was recorded; the gateway never saw a refund.
    assert await refunds(tx) == {}
    assert not [call for call in sandbox(tx).calls if call[0] == "refund"]


async def test_a_refund_refused_for_good_fails_is_reported_and_counted(tx: Transactions) -> None:
    await cleared_hold(tx, card=FAILING)
    assert (await refund(tx, "r1.1", "30")).status_code == 200

    await tx.service.relay_once()

    assert await refunds(tx) == {"r1.1": ("failed", "30.00", FAILING_REFUND_REASON)}
    task = callbacks(tx)["inv-1:r1.1:failed"]
    assert (task["kind"], task["status"], task["reason"]) == (
        "refund",
        "failed",
        FAILING_REFUND_REASON,
    )
    assert await metric(tx, "qrpay_transactions_refunds_total", outcome="failed") == 1
    assert await metric(tx, "qrpay_transactions_refunds_total", outcome="succeeded") == 0
    refunded = "qrpay_transactions_refunded_minor_units_total"
    assert await metric(tx, refunded, currency="RUB") == 0
    assert (await tx.get())["refunded"] == "0.00"
    # Final: never tried again; its room is free for another refund.
    tx.clock.advance(600)
    await tx.service.relay_once()
    assert sandbox(tx).calls.count(("refund", "inv-1:r1.1")) == 1
    assert (await refund(tx, "r2.1", "100")).status_code == 200


async def test_a_refund_without_an_answer_stays_pending_and_is_found_by_lookup(
    tx: Transactions,
) -> None:
    await cleared_hold(tx, card=SLOW)
    assert (await refund(tx, "r1.1", "25")).status_code == 200

    await tx.service.relay_once()
    assert await refunds(tx) == {"r1.1": ("pending", "25.00", None)}  # unknown, never failed
    assert not [k for k in callbacks(tx) if ":r1.1:" in k]
    # Its pending amount keeps its room taken meanwhile.
    assert refused(await refund(tx, "r2.1", "75.01")) == (409, "refund_exceeds_cleared")
    await tx.service.relay_once()  # not before its backoff
    assert sandbox(tx).calls.count(("refund", "inv-1:r1.1")) == 1

    tx.clock.advance(RETRY_CAP)
    await tx.service.relay_once()

    assert await refunds(tx) == {"r1.1": ("succeeded", "25.00", None)}
    # The second try asked the gateway first and found the refund it had made.
    refund_calls = [call for call in sandbox(tx).calls if call[1] == "inv-1:r1.1"]
    assert refund_calls == [("refund", "inv-1:r1.1"), ("lookup", "inv-1:r1.1")]
    assert [k for k in callbacks(tx) if ":r1.1:" in k] == ["inv-1:r1.1:succeeded"]
    assert (await tx.get())["refunded"] == "25.00"
    refunded = "qrpay_transactions_refunded_minor_units_total"
    assert await metric(tx, refunded, currency="RUB") == 2500
