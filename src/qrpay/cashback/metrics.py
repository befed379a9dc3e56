"""cashback's own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from prometheus_client import Counter

from qrpay.kernel.metrics import MetricSet, counter


@dataclass(frozen=True)
class CashbackMetrics(MetricSet):
    accruals: Annotated[
        Counter,
        counter("qrpay_cashback_accruals", "Cashback accruals created (repeats not counted)"),
    ]
