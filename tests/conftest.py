from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.logging import configure_logging
from tests.support.mockserver import MockServer

configure_logging("WARNING", "console")


@pytest.fixture
async def mockserver() -> AsyncIterator[MockServer]:
    server = MockServer()
    await server.start()
    yield server
    await server.stop()
    assert not server.unmocked, f"calls to unmocked downstream paths: {server.unmocked}"


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def postgres_url() -> str:
    """The admin URL of a real PostgreSQL; the postgres tier is skipped without it.

    CI sets QRPAY_TEST_POSTGRES_URL and QRPAY_REQUIRE_POSTGRES=1, so there these
    tests cannot silently skip.
    """
    url = os.environ.get("QRPAY_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("QRPAY_REQUIRE_POSTGRES") == "1":
            pytest.fail("QRPAY_REQUIRE_POSTGRES=1 but QRPAY_TEST_POSTGRES_URL is not set")
        pytest.skip("QRPAY_TEST_POSTGRES_URL is not set")
    return url
