"""payments-eda's config section."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from qrpay.kernel.config import Strict


class PaymentsConfig(Strict):
    polling_delay_seconds: Decimal = Field(default=Decimal("1"), gt=0, le=60)
    # Tries of one transaction callback before it is kept as failed. Retries wait 1, 2, 4, 8,
    # then 10 s each (kernel/queue.py): 360 tries ride out about an hour of outage.
    callback_max_attempts: int = Field(default=360, ge=1, le=10_000)
    # Tries of a cashback accrual before it is recorded as a problem (the payment stands);
    # 60 tries are about ten minutes.
    cashback_max_attempts: int = Field(default=60, ge=1, le=10_000)
    # When the durable check that a started payment really got its hold runs.
    hold_watchdog_seconds: float = Field(default=30, gt=0)
    # The whole budget of one pay request in payments-eda, its downstream calls included
    # (each is bounded by what is left of it): a caller (api-proxy) waits at least this long
    # before it reads the outcome as unknown.
    pay_budget_ms: int = Field(default=6000, ge=100, le=60_000)
    # Guests waiting on their payment's status at once per instance (the long-poll,
    # ``payments_eda.waits``); one more is answered at once and polls.
    max_waiting: int = Field(default=10_000, ge=0, le=1_000_000)
