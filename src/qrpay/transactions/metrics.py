"""transactions' own metrics, registered once per app on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from prometheus_client import Counter, Gauge

from qrpay.kernel.metrics import MetricSet, counter, gauge


@dataclass(frozen=True)
class TransactionsMetrics(MetricSet):
    operations: Annotated[
        Counter,
        counter(
            "qrpay_transactions_operations",
            "Operations started (pending) and finished, by kind and status",
            ("kind", "status"),
        ),
    ]
    callbacks_sent: Annotated[
        Counter,
        counter(
            "qrpay_transactions_callbacks_sent",
            "Callback tasks put on an owner's queue for a finished operation",
        ),
    ]
    pending_operations: Annotated[
        Gauge, gauge("qrpay_transactions_pending_operations", "Operations waiting for the gateway")
    ]
    unknown_outcomes: Annotated[
        Counter,
        counter(
            "qrpay_transactions_unknown_outcomes",
            "Operations still without a definite gateway answer after"
            " gateway.unknown_alert_attempts tries (alert: money may be stuck)",
            ("kind",),
        ),
    ]
    clear_retries: Annotated[
        Counter,
        counter(
            "qrpay_transactions_clear_retries",
            "Clears the gateway refused that are tried again under a new key after a backoff",
        ),
    ]
    refunds: Annotated[
        Counter,
        counter(
            "qrpay_transactions_refunds",
            "Refunds finished, by outcome: succeeded, or failed (refused for good, final)",
            ("outcome",),
        ),
    ]
    refunded_minor_units: Annotated[
        Counter,
        counter(
            "qrpay_transactions_refunded_minor_units",
            "Money given back by succeeded refunds, in the currency's minor units, by currency",
            ("currency",),
        ),
    ]
