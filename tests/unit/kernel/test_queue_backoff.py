"""The queue's retry waits: doubling, capped, jittered down, bounded in tries."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from qrpay.kernel.queue import TaskSpec, retry_strategy

SPEC = TaskSpec("t", queue="q", max_attempts=6, backoff_seconds=1, backoff_cap_seconds=10)


def job(attempts: int) -> Any:
    return SimpleNamespace(attempts=attempts)


@pytest.mark.parametrize(
    ("attempts", "full_wait"), [(0, 1), (1, 2), (2, 4), (3, 8), (4, 10), (5, 10), (60, 10)]
)
def test_waits_double_up_to_the_cap_and_jitter_only_shortens(
    attempts: int, full_wait: float
) -> None:
    strategy = retry_strategy(SPEC)
    rng = random.Random(7)
    waits = [strategy.wait_seconds(attempts, rng=rng) for _ in range(200)]
    assert all(0.75 * full_wait <= wait <= full_wait for wait in waits)
    # Spread out, so tasks failed in one outage do not all come back in the same instant.
    assert max(waits) - min(waits) > 0.1 * full_wait


def test_a_task_out_of_tries_is_not_retried() -> None:
    strategy = retry_strategy(SPEC)
    assert strategy.get_retry_decision(exception=RuntimeError(), job=job(5)) is not None
    assert strategy.get_retry_decision(exception=RuntimeError(), job=job(6)) is None


def test_reach_of_the_default_payment_callback_tries_is_about_an_hour() -> None:
    from qrpay.payments_eda.config import PaymentsConfig

    tries = PaymentsConfig().callback_max_attempts
    strategy = retry_strategy(TaskSpec("t", queue="q", max_attempts=tries))
    longest = sum(min(strategy.cap, strategy.base * 2**n) for n in range(tries))
    assert 3000 <= longest <= 4000
