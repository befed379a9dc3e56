"""Rate limits: a token bucket per key (a POS key, a user, a client address), in this process.

Each instance counts on its own, so with N instances behind a balancer the effective
limit is up to N times the configured one: enough to stop a runaway POS or a password-
spraying client, without a shared store on the hot path. The rule is read from the live
config on every check, so a reload changes it at once (a bucket keeps its tokens, capped
at the new burst).

Memory is bounded: a bucket idle long enough to be full again is the same as no bucket
and is dropped (the oldest first, on every check); past ``max_keys`` the least recently
used goes too, which can only ever let a request through, never refuse one.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from prometheus_client import Counter

from qrpay.kernel.clock import Clock
from qrpay.kernel.config import LimitName, RateLimit
from qrpay.kernel.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # the monotonic time ``tokens`` was counted at


class RateLimiter:
    def __init__(
        self,
        name: LimitName,
        *,
        rule: Callable[[], RateLimit | None],
        max_keys: Callable[[], int],
        clock: Clock,
        refused: Counter,
    ) -> None:
        self.name = name
        self._rule = rule
        self._max_keys = max_keys
        self._clock = clock
        self._refused = refused.labels(name.value)
        # Least recently used first.
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: Hashable) -> None:
        """Take one token of ``key``'s bucket, or raise RateLimited with when to come back."""
        rule = self._rule()
        if rule is None:
            return
        now = self._clock.monotonic()
        self._drop_idle(rule, now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(rule.burst), now)
            while len(self._buckets) > self._max_keys():
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(rule.burst), bucket.tokens + elapsed * rule.per_second)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        self._refused.inc()
        wait = (1 - bucket.tokens) / rule.per_second
        raise RateLimited(
            f"too many requests ({self.name.value}); retry later",
            retry_after=max(1, math.ceil(wait)),
        )

    def _drop_idle(self, rule: RateLimit, now: float) -> None:
        # The least recently used are first: stop at the first one not yet full again.
        refill = rule.burst / rule.per_second
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.at < refill:
                return
            self._buckets.popitem(last=False)
