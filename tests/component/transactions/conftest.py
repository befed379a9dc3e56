from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qrpay.kernel.clock import FrozenClock
from tests.support.component.transactions import Transactions, running_transactions


@pytest.fixture
async def tx(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Transactions]:
    async with running_transactions(tmp_path, frozen_clock) as env:
        yield env
