"""A gateway call without a definite answer is UNKNOWN, never a failure; voiding a hold.

Background jobs are off and the clock is frozen: each test drives the relay itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.transactions.gateway import SandboxGateway
from tests.support.component.transactions import (
    BROKEN,
    OK,
    Transactions,
    metric,
    running_transactions,
)

LOST = {"id": "card-lost", "token": "sandbox-lost-4242"}
RETRY_CAP = 4
ALERT_AFTER = 3


@pytest.fixture
async def tx(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Transactions]:
    gateway = {"retry_cap_seconds": RETRY_CAP, "unknown_alert_attempts": ALERT_AFTER}
    async with running_transactions(tmp_path, frozen_clock, **gateway) as env:
        yield env


def sandbox(tx: Transactions) -> SandboxGateway:
    gateway = tx.service.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


async def statuses(tx: Transactions) -> list[tuple[str, str]]:
    return [(o["operation_id"], o["status"]) for o in (await tx.get())["operations"]]


async def void(tx: Transactions, hold_id: str = "h1") -> Any:
    return await tx.client.post(
        f"/v1/invoices/inv-1/operations/{hold_id}/void",
        json={"release_operation_id": f"{hold_id}.unhold"},
    )


async def test_no_answer_stays_pending_for_ever_with_capped_backoff_and_an_alert(
    tx: Transactions,
) -> None:
    await tx.invoice()
    await tx.hold("h1", card=BROKEN)
    tries = 8
    for attempt in range(1, tries + 1):
        await tx.service.relay_once()
        assert await statuses(tx) == [("h1", "pending")], attempt
        # Not before its backoff, which never grows past the cap.
        await tx.service.relay_once()
        tx.clock.advance(min(2**attempt, RETRY_CAP))
    calls = sandbox(tx).calls
    # Every try after the first asks what became of the key before calling again.
    assert calls[:3] == [("hold", "inv-1:h1"), ("lookup", "inv-1:h1"), ("hold", "inv-1:h1")]
    assert calls.count(("hold", "inv-1:h1")) == tries
    assert tx.jobs() == []  # no outcome, no callback
    assert await metric(tx, "qrpay_transactions_unknown_outcomes_total", kind="hold") == 1


async def test_a_lost_hold_answer_is_reconciled_by_lookup(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=LOST)
    await tx.service.relay_once()
    assert await statuses(tx) == [("h1", "pending")]
    tx.clock.advance(2)
    await tx.service.relay_once()
    assert await statuses(tx) == [("h1", "succeeded")]
    # One hold at the gateway: the second try found it by its key.
    assert sandbox(tx).calls == [("hold", "inv-1:h1"), ("lookup", "inv-1:h1")]
    assert [job["queueing_lock"] for job in tx.jobs()] == ["inv-1:h1:succeeded"]


async def test_a_lost_clear_answer_is_never_turned_into_a_release(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=LOST)
    await tx.service.relay_once()
    tx.clock.advance(2)
    await tx.service.relay_once()
    clear = await tx.operation(operation_id="h1.clear", kind="clear", target="h1")
    assert clear.status_code == 200, clear.text
    for _ in range(5):  # more tries than the old code allowed before recording a failure
        await tx.service.relay_once()
        if (await statuses(tx))[-1][1] != "pending":
            break
        tx.clock.advance(RETRY_CAP)
    invoice = await tx.get()
    assert await statuses(tx) == [("h1", "succeeded"), ("h1.clear", "succeeded")]
    assert (invoice["held"], invoice["cleared"], invoice["released"]) == ("0.00", "100.00", "0.00")
    assert sandbox(tx).calls.count(("clear", "inv-1:h1.clear")) == 1


async def test_void_of_a_hold_that_never_arrived_cancels_its_late_request(
    tx: Transactions,
) -> None:
    await tx.invoice()
    voided = await void(tx)
    assert voided.status_code == 200, voided.text
    assert voided.json() == {"operation_id": "h1", "outcome": "voided"}
    late = await tx.hold("h1")
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "canceled"
    await tx.service.relay_once()
    assert await statuses(tx) == [("h1", "canceled")]
    assert sandbox(tx).calls == []  # the gateway never saw it
    assert (await void(tx)).json()["outcome"] == "voided"  # repeatable
    # The order may be paid again with a new hold.
    assert (await tx.hold("h2")).status_code == 200


async def test_void_of_an_unsent_pending_hold_cancels_it(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    assert (await void(tx)).json()["outcome"] == "voided"
    await tx.service.relay_once()
    assert await statuses(tx) == [("h1", "canceled")]
    assert sandbox(tx).calls == []


async def test_void_of_a_hold_at_the_gateway_waits_for_its_answer(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=BROKEN)
    await tx.service.relay_once()
    assert (await void(tx)).json()["outcome"] == "in_flight"
    assert await statuses(tx) == [("h1", "pending")]


async def test_void_of_a_succeeded_hold_releases_it(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1")
    await tx.service.relay_once()
    assert (await void(tx)).json()["outcome"] == "releasing"
    assert (await void(tx)).json()["outcome"] == "releasing"  # one release, however often
    await tx.service.relay_once()
    assert (await void(tx)).json()["outcome"] == "released"
    invoice = await tx.get()
    assert await statuses(tx) == [("h1", "succeeded"), ("h1.unhold", "succeeded")]
    assert (invoice["held"], invoice["released"]) == ("0.00", "100.00")


async def test_a_hold_being_cleared_cannot_be_voided(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=OK)
    await tx.service.relay_once()
    await tx.operation(operation_id="h1.clear", kind="clear", target="h1")
    refused = await void(tx)
    assert refused.status_code == 409
    assert refused.json()["code"] == "hold_clearing"
