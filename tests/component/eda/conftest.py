import pytest

from qrpay.runner.config import QrpayConfig
from tests.support.component.eda import TTL
from tests.support.services import dev_config


@pytest.fixture
def service_name() -> str:
    return "eda"


@pytest.fixture
def service_config() -> QrpayConfig:
    return dev_config(orders={"ttl_seconds": TTL, "ttl_check_interval_seconds": 30})
