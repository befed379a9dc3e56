"""eda's own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from prometheus_client import Counter, Gauge

from qrpay.kernel.metrics import MetricSet, counter, gauge


@dataclass(frozen=True)
class EdaMetrics(MetricSet):
    open_orders: Annotated[
        Gauge, gauge("qrpay_open_orders", "Orders not closed yet (WAITING or PAYMENT_IN_PROGRESS)")
    ]
    canceled_by_ttl: Annotated[
        Counter,
        counter("qrpay_orders_canceled_by_ttl", "Unpaid orders closed because their TTL passed"),
    ]
    created: Annotated[Counter, counter("qrpay_orders_created", "Orders created from a pre-check")]
    paid: Annotated[Counter, counter("qrpay_orders_paid", "Orders marked paid")]
