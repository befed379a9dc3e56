"""transactions' config: its sections, and what its production refuses (``kernel.production``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from qrpay.kernel.config import ConfigCode, ConfigRefused, Strict
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Environment, Settings

if TYPE_CHECKING:
    # The composed model (the runner's), for typing only: it is made of this module.
    from qrpay.runner.config import QrpayConfig


class GatewayConfig(Strict):
    kind: str = Field(default="sandbox", pattern=r"^sandbox$")
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    # How long one gateway call may take before its outcome counts as unknown.
    call_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Sandbox faults: this share of calls is carried out but its answer is lost (the
    # caller sees no answer; a lookup by the idempotency key finds the result).
    lost_answer_rate: float = Field(default=0.0, ge=0, le=1)
    # An operation without a definite answer is retried with this capped backoff, for
    # ever; past ``unknown_alert_attempts`` tries it is counted as stuck (an alert).
    retry_cap_seconds: float = Field(default=30.0, gt=0, le=3600)
    unknown_alert_attempts: int = Field(default=10, ge=1, le=10_000)
    # A clear the gateway refuses is tried this many times in all, each under a new key and
    # after the same capped backoff (2, 4, 8, 16 s by default), before it is failed.
    clear_attempts: int = Field(default=5, ge=1, le=100)


class TransactionsConfig(Strict):
    # A hold never cleared is released after this long.
    hold_ttl_seconds: float = Field(default=3 * 24 * 3600, gt=0)
    gateway: GatewayConfig = GatewayConfig()
    # How often the relay looks for unprocessed operations and undelivered callbacks.
    relay_interval_seconds: float = Field(default=0.5, gt=0)


def gateway_fault(settings: Settings, config: QrpayConfig) -> ConfigRefused | None:
    """The sandbox fault switch of the tests loses gateway answers."""
    if config.transactions.gateway.lost_answer_rate:
        return refused(
            "transactions.gateway.lost_answer_rate loses gateway answers on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    return None


def sandbox_gateway(settings: Settings, config: QrpayConfig) -> ConfigRefused | None:
    """Production moves money: staging may run on the sandbox, production may not."""
    if settings.environment == Environment.PRODUCTION and config.transactions.gateway.kind == (
        "sandbox"
    ):
        return ConfigRefused(
            "transactions.gateway.kind is the sandbox: no money would move. Production "
            "needs a real gateway; QRPAY_ENVIRONMENT=staging runs on the sandbox with "
            "every other production check",
            code=ConfigCode.SANDBOX_GATEWAY,
        )
    return None
