"""Fixtures every tier uses: the mock downstream server and a frozen clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from qrpay.kernel.clock import FrozenClock
from tests.support.mockserver import MockServer


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
