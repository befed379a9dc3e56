"""Following eda's change feed: the client side every follower shares.

A new follower starts at the feed's tail: what it did not see its owner reads from
eda when asked. From then on every change eda commits comes through the feed, and
each page goes to ``apply`` (iiko-integration keeps statuses and pushes them to the
POS; payments-eda wakes the guests waiting on an order).

The lag is measured from the start of the last read that left nothing behind
(``more`` false): eda answered it from a snapshot taken after that moment, so
every change committed before it has been applied. A long-poll answers within
``wait_ms`` even when nothing changes, so an idle feed keeps proving the
follower current; a feed that is slow, failing, or held back by an old
transaction in eda's database lets the lag grow past ``max_lag_ms``, and then
the owner reads eda directly (``is_fresh``).

The same moment, as Unix time, and the limit are exported (``FeedGauges``) so an alert
can see a follower past ``max_lag_ms`` (deploy/prometheus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from qrpay.eda.client import EdaClient
from qrpay.eda.config import FeedConfig
from qrpay.eda.schemas import ChangesPage
from qrpay.kernel.clock import Clock
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.service import every


@dataclass(frozen=True)
class FeedGauges:
    # The Unix time of the start of the last read that left nothing behind.
    current_as_of: Gauge
    # ``max_lag_ms`` in seconds, as configured now.
    max_lag: Gauge

    @classmethod
    def of(cls, metrics: ServiceMetrics) -> FeedGauges:
        return cls(
            current_as_of=metrics.gauge(
                "qrpay_feed_current_as_of_seconds",
                "Unix time of the start of the follower's last complete read of eda's feed "
                "(the stalest worker's)",
                lowest=True,
            ),
            max_lag=metrics.gauge(
                "qrpay_feed_max_lag_seconds", "feed.max_lag_ms: past it the owner reads eda"
            ),
        )


class FeedFollower:
    """Reads eda's feed page after page and hands each to ``apply``; subclasses say what
    a page means to them."""

    job_name = "feed-follower"

    def __init__(
        self,
        eda: EdaClient,
        clock: Clock,
        config: Callable[[], FeedConfig],
        gauges: FeedGauges | None = None,
    ) -> None:
        self._eda = eda
        self._clock = clock
        self._config = config
        self.cursor: str | None = None
        # The clock's monotonic time of the start of the last read that left nothing behind.
        self.current_as_of: float | None = None
        self._gauges = gauges

    def apply(self, after: str, page: ChangesPage) -> None:
        """One page read after the cursor ``after``, in feed order."""

    def is_fresh(self) -> bool:
        if self.current_as_of is None:
            return False
        return self._clock.monotonic() - self.current_as_of <= self._config().max_lag_ms / 1000

    async def step(self) -> None:
        """One read of the feed, applied."""
        config = self._config()
        if self.cursor is None:
            self.cursor = await self._eda.feed_tail()
        started = self._clock.monotonic()
        started_at = self._clock.now().timestamp()
        after = self.cursor
        page = await self._eda.changes(after, limit=config.page_size, wait_ms=config.wait_ms)
        self.apply(after, page)
        self.cursor = page.cursor
        if not page.more:
            self.current_as_of = started
            if self._gauges is not None:
                self._gauges.current_as_of.set(started_at)
        if self._gauges is not None:
            self._gauges.max_lag.set(config.max_lag_ms / 1000)

    async def run(self) -> None:
        # A failed read keeps the cursor: nothing is skipped when the feed comes back, and
        # the owner reads eda directly meanwhile.
        await every(0, self.step, self.job_name, after_failure=self._retry_seconds)

    def _retry_seconds(self) -> float:
        return self._config().retry_ms / 1000
