"""transactions' own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from qrpay.kernel.metrics import ServiceMetrics


@dataclass(frozen=True)
class TransactionsMetrics:
    operations: Counter
    callbacks_sent: Counter
    pending_operations: Gauge
    unknown_outcomes: Counter

    @classmethod
    def register(cls, metrics: ServiceMetrics) -> TransactionsMetrics:
        return cls(
            operations=metrics.counter(
                "qrpay_transactions_operations",
                "Operations started (pending) and finished, by kind and status",
                ("kind", "status"),
            ),
            callbacks_sent=metrics.counter(
                "qrpay_transactions_callbacks_sent",
                "Callback tasks put on an owner's queue for a finished operation",
            ),
            pending_operations=metrics.gauge(
                "qrpay_transactions_pending_operations", "Operations waiting for the gateway"
            ),
            unknown_outcomes=metrics.counter(
                "qrpay_transactions_unknown_outcomes",
                "Operations still without a definite gateway answer after"
                " gateway.unknown_alert_attempts tries (alert: money may be stuck)",
                ("kind",),
            ),
        )
