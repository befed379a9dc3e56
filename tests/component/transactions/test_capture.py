"""A captured hold: the invoice made with it, cleared in the same pass, one callback.

Background jobs are off: each test drives the processor and the relay itself.
"""

from __future__ import annotations

from typing import Any

from tests.support.component.transactions import INVOICE, OK, POOR, Transactions


async def captured_hold(tx: Transactions, card: dict[str, str] = OK, **extra: Any) -> Any:
    return await tx.operation(
        operation_id="h1",
        kind="hold",
        amount="100",
        payment_method=card,
        capture=True,
        invoice=INVOICE,
        **extra,
    )


def reported(tx: Transactions) -> list[tuple[str, str, str]]:
    return [
        (job["args"]["operation_id"], job["args"]["kind"], job["args"]["status"])
        for job in tx.jobs()
    ]


async def test_the_invoice_is_made_with_its_first_operation(tx: Transactions) -> None:
    answer = await captured_hold(tx)
    assert answer.status_code == 200, answer.text
    invoice = await tx.get()
    assert (invoice["owner"], invoice["user_id"]) == ("payments-eda", "user-1")
    assert [op["operation_id"] for op in invoice["operations"]] == ["h1"]
    # A repeat is the same operation, on the same invoice.
    again = await captured_hold(tx)
    assert again.json() == answer.json()
    # An invoice that exists with other parameters is refused as PUT refuses it.
    other = await tx.operation(
        operation_id="h2",
        kind="hold",
        amount="100",
        payment_method=OK,
        invoice={**INVOICE, "currency": "USD"},
    )
    assert (other.status_code, other.json()["code"]) == (409, "invoice_mismatch")


async def test_a_captured_hold_is_cleared_in_the_same_pass_with_one_callback(
    tx: Transactions,
) -> None:
    await captured_hold(tx)
    await tx.service.relay_once()  # the hold, then its clear
    await tx.service.relay_once()
    invoice = await tx.get()
    assert [(op["operation_id"], op["kind"], op["status"]) for op in invoice["operations"]] == [
        ("h1", "hold", "succeeded"),
        ("h1.clear", "clear", "succeeded"),
    ]
    assert (invoice["held"], invoice["cleared"]) == ("0.00", "100.00")
    # The owner hears of the clear only: the hold's success needs no step of its own.
    assert reported(tx) == [("h1.clear", "clear", "succeeded")]
    assert tx.jobs()[0]["args"]["target"] == "h1"
    assert tx.jobs()[0]["args"]["user_id"] == "user-1"


async def test_a_captured_hold_that_fails_reports_its_failure_and_has_no_clear(
    tx: Transactions,
) -> None:
    await captured_hold(tx, card=POOR)
    await tx.service.relay_once()
    invoice = await tx.get()
    assert [op["status"] for op in invoice["operations"]] == ["failed"]
    assert reported(tx) == [("h1", "hold", "failed")]


async def test_a_void_after_the_capture_is_refused_the_clear_finishes_it(
    tx: Transactions,
) -> None:
    await captured_hold(tx)
    await tx.service.process_pending()  # the hold succeeds; its clear is recorded with it
    voided = await tx.client.post(
        "/v1/invoices/inv-1/operations/h1/void", json={"release_operation_id": "h1.unhold"}
    )
    assert (voided.status_code, voided.json()["code"]) == (409, "hold_clearing")
    await tx.service.relay_once()
    assert reported(tx) == [("h1.clear", "clear", "succeeded")]


async def test_a_void_before_the_hold_is_sent_cancels_it_and_nothing_is_captured(
    tx: Transactions,
) -> None:
    await captured_hold(tx)
    voided = await tx.client.post(
        "/v1/invoices/inv-1/operations/h1/void", json={"release_operation_id": "h1.unhold"}
    )
    assert voided.json()["outcome"] == "voided"
    await tx.service.relay_once()
    invoice = await tx.get()
    assert [(op["operation_id"], op["status"]) for op in invoice["operations"]] == [
        ("h1", "canceled")
    ]


async def test_only_a_hold_can_be_captured(tx: Transactions) -> None:
    await tx.invoice()
    answer = await tx.operation(operation_id="c1", kind="clear", target="h1", capture=True)
    assert (answer.status_code, answer.json()["code"]) == (400, "unexpected_capture")


async def test_a_request_that_arrives_after_its_caller_gave_up_is_refused(
    tx: Transactions,
) -> None:
    """The owner's rollback may have run once it gave up (its sweep found no invoice to void):
    a hold arriving later must not take money; a repeat of one that exists is answered."""
    deadline = tx.clock.now().isoformat()
    tx.clock.advance(1)
    late = await captured_hold(tx, not_after=deadline)
    assert (late.status_code, late.json()["code"]) == (409, "request_expired")
    missing = await tx.client.get("/v1/invoices/inv-1")
    assert missing.status_code == 404  # nothing created, not even the invoice
    on_time = await captured_hold(tx, not_after=tx.clock.now().isoformat())
    assert on_time.status_code == 200, on_time.text
    tx.clock.advance(60)
    repeat = await captured_hold(tx, not_after=deadline)
    assert repeat.json() == on_time.json()
