"""transactions' config: what its production refuses (``kernel.production``)."""

from __future__ import annotations

from qrpay.kernel.config import ConfigCode, ConfigRefused, KernelConfig
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Environment, Settings


def gateway_fault(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
    """The sandbox fault switch of the tests loses gateway answers."""
    if config.transactions.gateway.lost_answer_rate:
        return refused(
            "transactions.gateway.lost_answer_rate loses gateway answers on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    return None


def sandbox_gateway(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
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
