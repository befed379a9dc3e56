"""Invoices and operation requests over HTTP (SQLite, frozen clock, in-memory queue)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qrpay.kernel.clock import FrozenClock
from tests.support.component.transactions import OK, POOR, Transactions
from tests.support.services import make_context, running_service


async def test_put_invoice_is_create_or_get(tx: Transactions) -> None:
    created = await tx.invoice()
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["invoice_id"] == "inv-1"
    assert body["operations"] == []
    assert (body["held"], body["cleared"], body["released"]) == ("0.00", "0.00", "0.00")
    again = await tx.invoice()
    assert again.status_code == 200
    assert again.json() == body
    # Another owner is 403 (tests/component/transactions/test_service_tickets.py).
    for field, value in [
        ("order_id", "order-2"),
        ("currency", "USD"),
    ]:
        mismatch = await tx.invoice(**{field: value})
        assert mismatch.status_code == 409, field
        assert mismatch.json()["code"] == "invoice_mismatch"


async def test_another_guest_takes_the_invoice_over_only_without_a_live_hold(
    tx: Transactions,
) -> None:
    await tx.invoice()
    assert (await tx.hold("h1", card=POOR)).status_code == 200
    await tx.service.process_pending()
    # user-1's hold was declined: user-2 at the same table may pay the order.
    taken = await tx.invoice(user_id="user-2")
    assert taken.status_code == 200, taken.text
    assert taken.json()["user_id"] == "user-2"
    assert (await tx.hold("h2")).status_code == 200
    await tx.service.process_pending()
    assert (await tx.get())["held"] == "100.00"
    # While user-2's hold is live nobody else becomes the payer.
    refused = await tx.invoice(user_id="user-3")
    assert refused.status_code == 409
    assert refused.json()["code"] == "hold_active"
    assert (await tx.get())["user_id"] == "user-2"


async def test_unknown_invoice(tx: Transactions) -> None:
    assert (await tx.client.get("/v1/invoices/nope")).json()["code"] == "invoice_not_found"
    response = await tx.operation(
        "nope", operation_id="h1", kind="hold", amount="1", payment_method=OK
    )
    assert response.status_code == 404
    assert response.json()["code"] == "invoice_not_found"


async def test_operation_requests_and_conflicts(tx: Transactions) -> None:
    await tx.invoice()
    hold = await tx.hold("h1", amount="100.5")
    assert hold.status_code == 200, hold.text
    assert hold.json()["status"] == "pending"
    assert hold.json()["amount"] == "100.50"
    assert hold.json()["payment_method_id"] == "card-ok"
    assert "token" not in hold.json()
    # A repeat is the same operation; another hold is refused while this one lives.
    assert (await tx.hold("h1", amount="100.50")).json() == hold.json()
    other = await tx.hold("h2")
    assert other.status_code == 409
    assert other.json()["code"] == "hold_active"
    mismatch = await tx.hold("h1", amount="99")
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "operation_mismatch"
    # Nothing to clear or release until the hold succeeded.
    clear = await tx.operation(operation_id="c1", kind="clear", target="h1")
    assert (clear.status_code, clear.json()["code"]) == (409, "nothing_to_clear")
    unhold = await tx.operation(operation_id="u1", kind="unhold", target="h1")
    assert (unhold.status_code, unhold.json()["code"]) == (409, "nothing_to_release")
    invalid = await tx.operation(operation_id="h3", kind="hold", amount="1.001", payment_method=OK)
    assert invalid.status_code == 400
    # The repeat and the refusals wrote nothing.
    invoice = await tx.get()
    assert [op["operation_id"] for op in invoice["operations"]] == ["h1"]


async def test_twenty_concurrent_holds_accept_one(tx: Transactions) -> None:
    await tx.invoice()
    responses = await asyncio.gather(*(tx.hold(f"h-{i}") for i in range(20)))
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) == 1
    assert {r.json()["code"] for r in responses if r.status_code != 200} == {"hold_active"}
    invoice = await tx.get()
    assert [op["operation_id"] for op in invoice["operations"]] == [
        accepted[0].json()["operation_id"]
    ]


async def test_start_up_fails_clearly_without_a_queue(tmp_path: Path) -> None:
    ctx = make_context("transactions", tmp_path, clock=FrozenClock(), queue=None)
    with pytest.raises(RuntimeError, match="needs the task queue"):
        async with running_service(ctx):
            pass
