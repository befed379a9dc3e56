"""cashback's config: what its production refuses (``kernel.production``)."""

from __future__ import annotations

from qrpay.kernel.config import ConfigCode, ConfigRefused, KernelConfig
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Settings


def failing_accruals(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
    """The fault switch of the tests fails every accrual."""
    if config.cashback_service.fail_accruals:
        return refused(
            "cashback_service.fail_accruals makes every accrual fail on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    return None
