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
    reversals: Annotated[
        Counter,
        counter("qrpay_cashback_reversals", "Cashback reversals created (repeats not counted)"),
    ]
    debts: Annotated[
        Counter,
        counter(
            "qrpay_cashback_debts",
            "Reversals the balance could not cover in full: a debt recorded for the user",
        ),
    ]
    debt_repayments: Annotated[
        Counter,
        counter("qrpay_cashback_debt_repayments", "Accruals that paid a user's debt off"),
    ]
