"""The sandbox gateway: outcomes by token prefix, and idempotency keys."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from qrpay.transactions.config import GatewayConfig
from qrpay.transactions.gateway import (
    FAILING_REFUND_PREFIX,
    FLAKY_CLEAR_REFUSALS,
    SLOW_REFUND_PREFIX,
    GatewayUnavailable,
    SandboxGateway,
)
from qrpay.transactions.schemas import OperationStatus

SUCCEEDED = OperationStatus.SUCCEEDED
FAILED = OperationStatus.FAILED


def sandbox() -> SandboxGateway:
    return SandboxGateway(lambda: GatewayConfig())


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("sandbox-ok-4242", SUCCEEDED, None),
        ("sandbox-insufficient-9995", FAILED, "insufficient_funds"),
        ("sandbox-declined-0002", FAILED, "card_declined"),
    ],
)
async def test_hold_outcome_by_token(
    token: str, status: OperationStatus, reason: str | None
) -> None:
    result = await sandbox().hold(token, Decimal("10"), "RUB", "inv:h1")
    assert (result.status, result.reason) == (status, reason)
    assert (result.reference is not None) == (status == SUCCEEDED)


async def test_error_token_gets_no_answer() -> None:
    with pytest.raises(GatewayUnavailable):
        await sandbox().hold("sandbox-error-0119", Decimal("10"), "RUB", "inv:h1")


async def test_clear_and_unhold_of_a_hold_succeed() -> None:
    gateway = sandbox()
    hold = await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", "inv:h1")
    clear = await gateway.clear("sandbox-ok-1", Decimal("10"), "RUB", "inv:c1", hold.reference)
    unhold = await gateway.unhold("sandbox-ok-1", Decimal("10"), "RUB", "inv:u1", hold.reference)
    assert clear.status == unhold.status == SUCCEEDED


async def test_a_retried_key_returns_the_first_result() -> None:
    gateway = sandbox()
    first = await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", "inv:h1")
    again = await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", "inv:h1")
    other = await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", "inv:h2")
    assert again == first
    assert other.reference != first.reference
    assert gateway.calls == [("hold", "inv:h1"), ("hold", "inv:h1"), ("hold", "inv:h2")]


async def test_latency_comes_from_live_config() -> None:
    config = GatewayConfig(latency_ms=0)
    gateway = SandboxGateway(lambda: config)
    await gateway.hold("sandbox-ok-1", Decimal("1"), "RUB", "k1")
    config = GatewayConfig(latency_ms=50)
    import time

    started = time.monotonic()
    await gateway.hold("sandbox-ok-1", Decimal("1"), "RUB", "k2")
    assert time.monotonic() - started >= 0.045


async def test_a_lost_answer_was_carried_out_and_a_lookup_finds_it() -> None:
    gateway = sandbox()
    assert await gateway.lookup("inv:h1") is None  # never seen: safe to call again
    with pytest.raises(GatewayUnavailable):
        await gateway.hold("sandbox-lost-1", Decimal("10"), "RUB", "inv:h1")
    found = await gateway.lookup("inv:h1")
    assert found is not None
    assert found.status == SUCCEEDED
    # The retry with the same key is the same operation, now answered.
    assert await gateway.hold("sandbox-lost-1", Decimal("10"), "RUB", "inv:h1") == found


async def test_a_late_answer_comes_after_the_call_deadline() -> None:
    config = GatewayConfig(call_timeout_seconds=0.05)
    gateway = SandboxGateway(lambda: config)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(config.call_timeout_seconds):
            await gateway.hold("sandbox-late-1", Decimal("10"), "RUB", "inv:h1")
    found = await gateway.lookup("inv:h1")
    assert found is not None
    assert found.status == SUCCEEDED


async def test_a_token_that_never_answers_is_never_carried_out() -> None:
    gateway = sandbox()
    with pytest.raises(GatewayUnavailable):
        await gateway.hold("sandbox-error-1", Decimal("10"), "RUB", "inv:h1")
    assert await gateway.lookup("inv:h1") is None


async def test_a_stuck_card_holds_but_refuses_every_clear_and_unhold_for_good() -> None:
    gateway = sandbox()
    hold = await gateway.hold("sandbox-stuck-1", Decimal("10"), "RUB", "inv:h1")
    clear = await gateway.clear("sandbox-stuck-1", Decimal("10"), "RUB", "inv:c1")
    unhold = await gateway.unhold("sandbox-stuck-1", Decimal("10"), "RUB", "inv:u1")
    assert hold.status == SUCCEEDED
    assert (clear.status, clear.reason) == (FAILED, "processing_error")
    assert unhold.status == FAILED


async def test_a_flaky_card_refuses_the_first_clears_of_each_hold_then_clears() -> None:
    gateway = sandbox()
    token = "sandbox-flaky-clear-1"
    hold = await gateway.hold(token, Decimal("10"), "RUB", "inv:h1")
    other = await gateway.hold(token, Decimal("10"), "RUB", "inv:h2")
    assert hold.status == other.status == SUCCEEDED
    clears = [
        await gateway.clear(token, Decimal("10"), "RUB", f"inv:c1:{n}", hold.reference)
        for n in range(1, FLAKY_CLEAR_REFUSALS + 2)
    ]
    assert [c.status for c in clears] == [FAILED] * FLAKY_CLEAR_REFUSALS + [SUCCEEDED]
    assert clears[0].reason == "processing_error"
    # A refused key stays refused; another hold's clears are counted on their own.
    again = await gateway.clear(token, Decimal("10"), "RUB", "inv:c1:1", hold.reference)
    assert again.status == FAILED
    first = await gateway.clear(token, Decimal("10"), "RUB", "inv:c2", other.reference)
    assert first.status == FAILED
    unhold = await gateway.unhold(token, Decimal("10"), "RUB", "inv:u2", other.reference)
    assert unhold.status == SUCCEEDED


async def cleared(gateway: SandboxGateway, token: str) -> str | None:
    """A hold of ``token`` and its clear, both succeeded; the hold's reference (the payment)."""
    hold = await gateway.hold(token, Decimal("10"), "RUB", "inv:h1")
    clear = await gateway.clear(token, Decimal("10"), "RUB", "inv:c1", hold.reference)
    assert hold.status == clear.status == SUCCEEDED
    return hold.reference


async def test_refunds_of_a_cleared_hold_succeed_and_a_retried_key_is_one_refund() -> None:
    gateway = sandbox()
    payment = await cleared(gateway, "sandbox-ok-1")
    first = await gateway.refund("sandbox-ok-1", Decimal("4"), "RUB", "inv:r1.1", payment)
    again = await gateway.refund("sandbox-ok-1", Decimal("4"), "RUB", "inv:r1.1", payment)
    second = await gateway.refund("sandbox-ok-1", Decimal("6"), "RUB", "inv:r2.1", payment)
    assert first.status == second.status == SUCCEEDED
    assert again == first
    assert second.reference != first.reference


async def test_a_failing_refund_card_pays_but_every_refund_is_refused_for_good() -> None:
    gateway = sandbox()
    token = f"{FAILING_REFUND_PREFIX}1"
    payment = await cleared(gateway, token)
    refused = await gateway.refund(token, Decimal("4"), "RUB", "inv:r1.1", payment)
    assert (refused.status, refused.reason) == (FAILED, "refund_refused")
    assert await gateway.lookup("inv:r1.1") == refused
    other = await gateway.refund(token, Decimal("1"), "RUB", "inv:r2.1", payment)
    assert other.status == FAILED


async def test_a_slow_refund_card_loses_the_first_answer_of_each_refund_only() -> None:
    gateway = sandbox()
    token = f"{SLOW_REFUND_PREFIX}1"
    payment = await cleared(gateway, token)  # its hold and clear answer at once
    with pytest.raises(GatewayUnavailable):
        await gateway.refund(token, Decimal("4"), "RUB", "inv:r1.1", payment)
    found = await gateway.lookup("inv:r1.1")
    assert found is not None
    assert found.status == SUCCEEDED  # carried out
    assert await gateway.refund(token, Decimal("4"), "RUB", "inv:r1.1", payment) == found
    with pytest.raises(GatewayUnavailable):
        await gateway.refund(token, Decimal("1"), "RUB", "inv:r2.1", payment)


async def test_lost_answer_rate_loses_a_share_of_first_answers_deterministically() -> None:
    async def holds_losing_their_first_answer(*, retry: bool) -> list[int]:
        gateway = SandboxGateway(lambda: GatewayConfig(lost_answer_rate=0.5))
        lost = []
        for n in range(200):
            try:
                await gateway.hold("sandbox-ok-1", Decimal("1"), "RUB", f"k{n}")
            except GatewayUnavailable:
                lost.append(n)
                if retry:  # the second call with that key is answered
                    await gateway.hold("sandbox-ok-1", Decimal("1"), "RUB", f"k{n}")
        return lost

    lost = await holds_losing_their_first_answer(retry=True)
    assert 50 < len(lost) < 150
    assert await holds_losing_their_first_answer(retry=False) == lost


async def test_the_sandbox_forgets_its_oldest_results_and_calls_past_its_bounds() -> None:
    gateway = SandboxGateway(lambda: GatewayConfig(), memory=3, calls_kept=2)
    for n in range(1, 6):
        await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", f"inv:h{n}")
    assert [await gateway.lookup(f"inv:h{n}") is not None for n in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    # Only the latest calls are kept: the five lookups above pushed out every hold.
    assert gateway.calls == [("lookup", "inv:h4"), ("lookup", "inv:h5")]
    # A forgotten key is a new call: a retry of it is carried out again.
    again = await gateway.hold("sandbox-ok-1", Decimal("10"), "RUB", "inv:h1")
    assert again.status == SUCCEEDED
    assert await gateway.lookup("inv:h3") is None  # pushed out by inv:h1
