"""eda's own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from qrpay.kernel.metrics import ServiceMetrics


@dataclass(frozen=True)
class EdaMetrics:
    open_orders: Gauge
    canceled_by_ttl: Counter
    created: Counter
    paid: Counter

    @classmethod
    def register(cls, metrics: ServiceMetrics) -> EdaMetrics:
        return cls(
            open_orders=metrics.gauge(
                "qrpay_open_orders", "Orders not closed yet (WAITING or PAYMENT_IN_PROGRESS)"
            ),
            canceled_by_ttl=metrics.counter(
                "qrpay_orders_canceled_by_ttl", "Unpaid orders closed because their TTL passed"
            ),
            created=metrics.counter("qrpay_orders_created", "Orders created from a pre-check"),
            paid=metrics.counter("qrpay_orders_paid", "Orders marked paid"),
        )
