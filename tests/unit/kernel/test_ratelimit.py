"""The token bucket of kernel.ratelimit, on a clock that moves only when told to."""

from __future__ import annotations

import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.config import LimitName, RateLimit
from qrpay.kernel.errors import RateLimited
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.ratelimit import RateLimiter


class Limits:
    """A limiter whose rule and key bound a test can change, as a config reload would."""

    def __init__(self, rule: RateLimit | None, max_keys: int = 1000) -> None:
        self.rule = rule
        self.max_keys = max_keys
        self.clock = FrozenClock()
        self.metrics = ServiceMetrics("test")
        self.limiter = RateLimiter(
            LimitName.PAY,
            rule=lambda: self.rule,
            max_keys=lambda: self.max_keys,
            clock=self.clock,
            refused=self.metrics.rate_limited,
        )

    def allowed(self, key: str, times: int = 1) -> int:
        """How many of ``times`` checks of ``key`` pass."""
        passed = 0
        for _ in range(times):
            try:
                self.limiter.check(key)
            except RateLimited:
                continue
            passed += 1
        return passed

    def refused_count(self) -> float:
        value = self.metrics.registry.get_sample_value("qrpay_rate_limited_total", {"limit": "pay"})
        return value or 0.0


def test_the_burst_passes_then_429_with_when_to_come_back() -> None:
    limits = Limits(RateLimit(per_second=0.5, burst=3))
    assert limits.allowed("u1", 3) == 3
    with pytest.raises(RateLimited) as refused:
        limits.limiter.check("u1")
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 2  # one token at 0.5 per second
    assert limits.refused_count() == 1


def test_tokens_come_back_at_the_rate_and_never_above_the_burst() -> None:
    limits = Limits(RateLimit(per_second=2, burst=4))
    assert limits.allowed("u1", 10) == 4
    limits.clock.advance(0.5)
    assert limits.allowed("u1", 10) == 1
    limits.clock.advance(1000)
    assert limits.allowed("u1", 10) == 4
    assert limits.refused_count() == 6 + 9 + 6


def test_keys_are_independent() -> None:
    limits = Limits(RateLimit(per_second=1, burst=2))
    assert limits.allowed("u1", 5) == 2
    assert limits.allowed("u2", 5) == 2


def test_a_new_rule_applies_at_once_and_off_lets_everything_through() -> None:
    limits = Limits(RateLimit(per_second=1, burst=2))
    assert limits.allowed("u1", 5) == 2
    limits.rule = RateLimit(per_second=1, burst=50)
    limits.clock.advance(3)
    assert limits.allowed("u1", 10) == 3  # the 2 were spent: 3 s at 1/s
    limits.rule = RateLimit(per_second=1, burst=1)
    limits.clock.advance(10)
    assert limits.allowed("u1", 5) == 1  # capped at the new burst
    limits.rule = None
    assert limits.allowed("u1", 100) == 100


def test_idle_buckets_are_dropped_and_the_count_is_bounded() -> None:
    limits = Limits(RateLimit(per_second=1, burst=2), max_keys=3)
    for key in ("a", "b", "c", "d", "e"):
        limits.allowed(key, 2)
    assert len(limits.limiter) == 3  # the least recently used went first
    # Past the time to refill a whole burst every bucket is idle: one check drops them all.
    limits.clock.advance(2)
    limits.allowed("f")
    assert len(limits.limiter) == 1
    # A bucket still refilling is kept, and still refuses.
    assert limits.allowed("f", 5) == 1
    limits.clock.advance(1.5)
    limits.allowed("g")
    assert len(limits.limiter) == 2
