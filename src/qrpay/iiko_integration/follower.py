"""Following eda's change feed into the instance's memory of statuses and its push hub.

What memory holds is current up to the follower's lag (``eda.follower``); past
``max_lag_ms`` polls are answered by reading eda directly.
"""

from __future__ import annotations

from collections.abc import Callable

from qrpay.eda.client import EdaClient
from qrpay.eda.config import FeedConfig
from qrpay.eda.follower import FeedFollower as EdaFeedFollower
from qrpay.eda.follower import FeedGauges
from qrpay.eda.schemas import ChangesPage
from qrpay.iiko_integration.memory import StatusMemory
from qrpay.iiko_integration.push import PushHub
from qrpay.kernel.clock import Clock

__all__ = ["FeedFollower", "FeedGauges"]


class FeedFollower(EdaFeedFollower):
    job_name = "iiko-feed-follower"

    def __init__(
        self,
        eda: EdaClient,
        memory: StatusMemory,
        clock: Clock,
        config: Callable[[], FeedConfig],
        hub: PushHub,
        gauges: FeedGauges | None = None,
    ) -> None:
        super().__init__(eda, clock, config, gauges)
        self._memory = memory
        # Every page goes on to the POS connections of this instance (``push``).
        self.hub = hub

    def apply(self, after: str, page: ChangesPage) -> None:
        for change in page.changes:
            self._memory.learn(change)
        self.hub.publish(after, page.changes, page.cursor)
