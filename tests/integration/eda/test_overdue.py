"""The overdue list's pages on real PostgreSQL, read through both instances: every stuck
payment is served exactly once, also when many changed at the same instant."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from tests.support.component.eda import create, move, start

pytestmark = pytest.mark.postgres


async def test_every_stuck_payment_is_served_once_across_pages_and_instances(
    instances: list[httpx.AsyncClient], frozen_clock: FrozenClock
) -> None:
    stuck = []
    for n in range(7):
        order_id = (await create(instances[n % 2], f"stuck-{n}"))["order"]["order_id"]
        assert (await start(instances[n % 2], order_id, f"p-{n}")).status_code == 200
        stuck.append(f"p-{n}")
        if n % 3 == 2:  # some share an instant, some do not
            frozen_clock.advance(1)
    rolling = (await create(instances[0], "rolling"))["order"]["order_id"]
    assert (await start(instances[0], rolling, "p-rolling")).status_code == 200
    assert (await move(instances[1], rolling, "p-rolling", "begin-rollback")).status_code == 200
    frozen_clock.advance(1)
    moment = frozen_clock.now().isoformat()
    fresh = (await create(instances[0], "fresh"))["order"]["order_id"]
    frozen_clock.advance(1)
    assert (await start(instances[0], fresh, "p-fresh")).status_code == 200

    listed: list[str] = []
    after: str | None = None
    for page_number in range(20):
        params: dict[str, Any] = {"updated_before": moment, "limit": 2}
        if after is not None:
            params["after"] = after
        answer = await instances[page_number % 2].get("/v1/orders/payments/overdue", params=params)
        assert answer.status_code == 200, answer.text
        listed += [p["payment_id"] for p in answer.json()["payments"]]
        after = answer.json()["next"]
        if after is None:
            break
    assert after is None
    assert sorted(listed) == sorted([*stuck, "p-rolling"])
    assert len(listed) == len(set(listed))
    # Oldest change first: the ones started at the first instant lead, in id order.
    assert listed[:3] == ["p-0", "p-1", "p-2"]
