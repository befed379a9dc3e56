from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from tests.support.component.transactions import TTL, Transactions
from tests.support.services import dev_config, make_context, running_service


@pytest.fixture
async def tx(tmp_path: Path, frozen_clock: FrozenClock) -> AsyncIterator[Transactions]:
    queue = TaskQueue()
    config = dev_config(
        transactions={"hold_ttl_seconds": TTL, "gateway": {"kind": "sandbox", "latency_ms": 0}}
    )
    ctx = make_context(
        "transactions",
        tmp_path,
        config=config,
        queue=queue,
        clock=frozen_clock,
        background_jobs=False,
    )
    async with running_service(ctx) as (app, client):
        yield Transactions(app, client, queue, frozen_clock)
