"""cashback's config: its section, and what its production refuses (``kernel.production``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qrpay.kernel.config import ConfigCode, ConfigRefused, Strict
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Settings

if TYPE_CHECKING:
    # The composed model (the runner's), for typing only: it is made of this module.
    from qrpay.runner.config import QrpayConfig


class CashbackServiceConfig(Strict):
    # The switch that makes accruals fail, for tests of the failure paths.
    fail_accruals: bool = False


def failing_accruals(settings: Settings, config: QrpayConfig) -> ConfigRefused | None:
    """The fault switch of the tests fails every accrual."""
    if config.cashback_service.fail_accruals:
        return refused(
            "cashback_service.fail_accruals makes every accrual fail on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    return None
