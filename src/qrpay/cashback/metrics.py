"""cashback's own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from qrpay.kernel.metrics import ServiceMetrics


@dataclass(frozen=True)
class CashbackMetrics:
    accruals: Counter

    @classmethod
    def register(cls, metrics: ServiceMetrics) -> CashbackMetrics:
        return cls(
            accruals=metrics.counter(
                "qrpay_cashback_accruals", "Cashback accruals created (repeats not counted)"
            ),
        )
