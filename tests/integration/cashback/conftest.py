from __future__ import annotations

import pytest

from tests.plugins.postgres import ServiceUnderTest


@pytest.fixture
def service_under_test() -> ServiceUnderTest:
    return ServiceUnderTest("cashback")
