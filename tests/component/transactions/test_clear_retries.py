"""A clear the gateway refuses is tried again, under a new key, before it is failed.

Background jobs are off and the clock is frozen: each test drives the relay itself and
moves the clock past each backoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.transactions.gateway import (
    FLAKY_CLEAR_REFUSALS,
    GatewayResult,
    GatewayUnavailable,
    PaymentGateway,
    SandboxGateway,
)
from tests.support.component.transactions import Transactions, metric, running_transactions

FLAKY = {"id": "card-flaky", "token": "sandbox-flaky-clear-4444"}
STUCK = {"id": "card-stuck", "token": "sandbox-stuck-4002"}
CLEAR_ATTEMPTS = 4
RETRY_CAP = 4
CLEAR = "inv-1:h1.clear"


@pytest.fixture
async def tx(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Transactions]:
    gateway = {"retry_cap_seconds": RETRY_CAP, "clear_attempts": CLEAR_ATTEMPTS}
    async with running_transactions(tmp_path, frozen_clock, **gateway) as env:
        yield env


class LosesAnswers(PaymentGateway):
    """The sandbox, but the answer to each of ``keys`` is lost once (the call is carried out)."""

    def __init__(self, inner: SandboxGateway, keys: set[str]) -> None:
        self.inner = inner
        self.keys = keys

    def _answer(self, key: str, result: GatewayResult) -> GatewayResult:
        if key in self.keys:
            self.keys.discard(key)
            raise GatewayUnavailable(f"answer to {key} lost")
        return result

    async def hold(self, token: str, amount: Decimal, currency: str, key: str) -> GatewayResult:
        return self._answer(key, await self.inner.hold(token, amount, currency, key))

    async def clear(
        self, token: str, amount: Decimal, currency: str, key: str, reference: str | None = None
    ) -> GatewayResult:
        return self._answer(key, await self.inner.clear(token, amount, currency, key, reference))

    async def unhold(
        self, token: str, amount: Decimal, currency: str, key: str, reference: str | None = None
    ) -> GatewayResult:
        return self._answer(key, await self.inner.unhold(token, amount, currency, key, reference))

    async def refund(
        self, token: str, amount: Decimal, currency: str, key: str, reference: str | None = None
    ) -> GatewayResult:
        return self._answer(key, await self.inner.refund(token, amount, currency, key, reference))

    async def lookup(self, key: str) -> GatewayResult | None:
        return await self.inner.lookup(key)


def sandbox(tx: Transactions) -> SandboxGateway:
    gateway = tx.service.gateway
    if isinstance(gateway, LosesAnswers):
        return gateway.inner
    assert isinstance(gateway, SandboxGateway)
    return gateway


async def captured_hold(tx: Transactions, card: dict[str, str]) -> None:
    """A hold started with ``capture`` (as payments-eda starts them), succeeded."""
    await tx.invoice()
    started = await tx.operation(
        operation_id="h1", kind="hold", amount="100", payment_method=card, capture=True
    )
    assert started.status_code == 200, started.text
    await tx.service.relay_once()


async def clear_status(tx: Transactions) -> str:
    ops = {o["operation_id"]: o for o in (await tx.get())["operations"]}
    status: str = ops["h1.clear"]["status"]
    return status


async def settle(tx: Transactions, rounds: int = 20) -> None:
    """Run the relay, moving the clock past each backoff, until the clear has an outcome."""
    for _ in range(rounds):
        await tx.service.relay_once()
        if await clear_status(tx) != "pending":
            return
        tx.clock.advance(RETRY_CAP)
    raise AssertionError("the clear never got an outcome")


def clears(tx: Transactions) -> list[str]:
    return [key for kind, key in sandbox(tx).calls if kind == "clear"]


def callbacks(tx: Transactions) -> list[Any]:
    return [job["queueing_lock"] for job in tx.jobs()]


async def test_a_clear_refused_twice_succeeds_on_its_third_key_with_one_callback(
    tx: Transactions,
) -> None:
    await captured_hold(tx, FLAKY)
    await tx.service.relay_once()
    assert clears(tx) == [CLEAR]
    assert await clear_status(tx) == "pending"  # refused, in retry: no callback yet
    assert callbacks(tx) == []
    # The fence holds while it retries: a void of its hold is refused.
    void = await tx.client.post(
        "/v1/invoices/inv-1/operations/h1/void", json={"release_operation_id": "h1.unhold"}
    )
    assert void.status_code == 409, void.text
    assert void.json()["code"] == "hold_clearing"
    # Not before its backoff (2 s after the first refusal).
    tx.clock.advance(1.9)
    await tx.service.relay_once()
    assert clears(tx) == [CLEAR]

    await settle(tx)

    assert FLAKY_CLEAR_REFUSALS == 2
    assert clears(tx) == [CLEAR, f"{CLEAR}:2", f"{CLEAR}:3"]
    invoice = await tx.get()
    assert await clear_status(tx) == "succeeded"
    assert (invoice["held"], invoice["cleared"], invoice["released"]) == ("0.00", "100.00", "0.00")
    assert callbacks(tx) == ["inv-1:h1.clear:succeeded"]
    assert tx.jobs()[0]["args"]["status"] == "succeeded"
    assert await metric(tx, "qrpay_transactions_clear_retries_total") == 2
    # Nothing further happens: no more tries, no second callback.
    tx.clock.advance(600)
    await tx.service.relay_once()
    assert len(clears(tx)) == 3
    assert callbacks(tx) == ["inv-1:h1.clear:succeeded"]


async def test_a_clear_refused_every_time_fails_after_its_last_try_with_one_callback(
    tx: Transactions,
) -> None:
    await captured_hold(tx, STUCK)
    await settle(tx)
    assert clears(tx) == [CLEAR] + [f"{CLEAR}:{n}" for n in range(2, CLEAR_ATTEMPTS + 1)]
    invoice = await tx.get()
    clear = next(o for o in invoice["operations"] if o["operation_id"] == "h1.clear")
    assert (clear["status"], clear["reason"]) == ("failed", "processing_error")
    assert (invoice["held"], invoice["cleared"]) == ("100.00", "0.00")
    assert callbacks(tx) == ["inv-1:h1.clear:failed"]
    assert await metric(tx, "qrpay_transactions_clear_retries_total") == CLEAR_ATTEMPTS - 1
    failed = {"kind": "clear", "status": "failed"}
    assert await metric(tx, "qrpay_transactions_operations_total", **failed) == 1
    tx.clock.advance(600)  # under the hold's TTL (its auto-release is another operation)
    await tx.service.relay_once()
    assert len(clears(tx)) == CLEAR_ATTEMPTS
    assert callbacks(tx) == ["inv-1:h1.clear:failed"]


async def test_an_unknown_outcome_between_tries_is_looked_up_not_tried_again_blindly(
    tx: Transactions,
) -> None:
    # The 2nd try's refusal and the 3rd try's success are carried out, their answers lost.
    tx.service.gateway = LosesAnswers(sandbox(tx), {f"{CLEAR}:2", f"{CLEAR}:3"})
    await captured_hold(tx, FLAKY)
    await settle(tx)
    calls = [call for call in sandbox(tx).calls if call[1].startswith(CLEAR)]
    assert calls == [
        ("clear", CLEAR),  # refused
        ("lookup", f"{CLEAR}:2"),  # a new key: the gateway never saw it
        ("clear", f"{CLEAR}:2"),  # refused, the answer lost: unknown
        ("lookup", f"{CLEAR}:2"),  # found refused: only now a new key
        ("lookup", f"{CLEAR}:3"),
        ("clear", f"{CLEAR}:3"),  # cleared, the answer lost: unknown
        ("lookup", f"{CLEAR}:3"),  # found cleared: never a fourth key
    ]
    assert await clear_status(tx) == "succeeded"
    assert callbacks(tx) == ["inv-1:h1.clear:succeeded"]
    assert await metric(tx, "qrpay_transactions_clear_retries_total") == 2


async def test_a_refused_unhold_is_not_retried(tx: Transactions) -> None:
    await tx.invoice()
    await tx.hold("h1", card=STUCK)
    await tx.service.relay_once()
    release = await tx.operation(operation_id="h1.unhold", kind="unhold", target="h1")
    assert release.status_code == 200, release.text
    await tx.service.relay_once()
    ops = {o["operation_id"]: o["status"] for o in (await tx.get())["operations"]}
    assert ops["h1.unhold"] == "failed"
    assert ("unhold", "inv-1:h1.unhold:2") not in sandbox(tx).calls
