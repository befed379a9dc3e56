"""Following eda's change feed into the instance's memory of statuses.

A new follower starts at the feed's tail with an empty memory: what it does not
know it reads from eda when asked. From then on every change eda commits comes
through the feed, so what memory holds is current up to the follower's lag.

The lag is measured from the start of the last read that left nothing behind
(``more`` false): eda answered it from a snapshot taken after that moment, so
every change committed before it is in memory. A long-poll answers within
``wait_ms`` even when nothing changes, so an idle feed keeps proving the
follower current; a feed that is slow, failing, or held back by an old
transaction in eda's database lets the lag grow past ``max_lag_ms``, and then
polls are answered by reading eda directly (``is_fresh``).

The same moment, as Unix time, and the limit are exported (``FeedGauges``) so an alert
can see a follower past ``max_lag_ms`` (deploy/prometheus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from qrpay.eda.client import EdaClient
from qrpay.eda.config import FeedConfig
from qrpay.iiko_integration.memory import StatusMemory
from qrpay.iiko_integration.push import PushHub
from qrpay.kernel.clock import Clock
from qrpay.kernel.service import every


@dataclass(frozen=True)
class FeedGauges:
    # The Unix time of the start of the last read that left nothing behind.
    current_as_of: Gauge
    # ``max_lag_ms`` in seconds, as configured now.
    max_lag: Gauge


class FeedFollower:
    def __init__(
        self,
        eda: EdaClient,
        memory: StatusMemory,
        clock: Clock,
        config: Callable[[], FeedConfig],
        hub: PushHub,
        gauges: FeedGauges | None = None,
    ) -> None:
        self._eda = eda
        self._memory = memory
        self._clock = clock
        self._config = config
        self.cursor: str | None = None
        # The clock's monotonic time of the start of the last read that left nothing behind.
        self.current_as_of: float | None = None
        # Every page goes on to the POS connections of this instance (``push``).
        self.hub = hub
        self._gauges = gauges

    def is_fresh(self) -> bool:
        if self.current_as_of is None:
            return False
        return self._clock.monotonic() - self.current_as_of <= self._config().max_lag_ms / 1000

    async def step(self) -> None:
        """One read of the feed, applied to memory."""
        config = self._config()
        if self.cursor is None:
            self.cursor = await self._eda.feed_tail()
        started = self._clock.monotonic()
        started_at = self._clock.now().timestamp()
        after = self.cursor
        page = await self._eda.changes(after, limit=config.page_size, wait_ms=config.wait_ms)
        for change in page.changes:
            self._memory.learn(change)
        self.cursor = page.cursor
        self.hub.publish(after, page.changes, page.cursor)
        if not page.more:
            self.current_as_of = started
            if self._gauges is not None:
                self._gauges.current_as_of.set(started_at)
        if self._gauges is not None:
            self._gauges.max_lag.set(config.max_lag_ms / 1000)

    async def run(self) -> None:
        # A failed read keeps the cursor: nothing is skipped when the feed comes back, and
        # polls are answered from eda directly meanwhile.
        await every(0, self.step, "iiko-feed-follower", after_failure=self._retry_seconds)

    def _retry_seconds(self) -> float:
        return self._config().retry_ms / 1000
