"""The POS routes are rate limited per API key (issue 11), answered before any eda call."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import ServiceContext
from qrpay.runner.config import parse_config
from tests.support.component.iiko_integration import API_KEY
from tests.support.services import dev_config, dev_secdist, running_service

OTHER_KEY = "second-pos-key-0123456789abcdef"


async def statuses(client: httpx.AsyncClient, key: str) -> int:
    # An empty body: refused 400 after the key (and its limit), with no call to eda.
    answer = await client.post("/orders/list", json={}, headers={"X-API-Key": key})
    if answer.status_code == 429:
        assert answer.json()["code"] == "rate_limited"
        assert answer.headers["retry-after"] == "2"
    return answer.status_code


async def test_each_pos_key_has_its_own_limit(
    iiko_context: Callable[..., ServiceContext],
) -> None:
    data = dev_config().model_dump(mode="json")
    data["limits"]["pos_key"] = {"per_second": 0.5, "burst": 2}
    keys = [
        {"name": "one", "key": API_KEY, "client_ids": ["rest-1"]},
        {"name": "two", "key": OTHER_KEY, "client_ids": ["rest-2"]},
    ]
    ctx = iiko_context(parse_config(data), secdist=dev_secdist(api_keys=keys))
    assert isinstance(ctx.clock, FrozenClock)
    async with running_service(ctx) as (_app, client):
        assert [await statuses(client, API_KEY) for _ in range(3)] == [400, 400, 429]
        assert await statuses(client, OTHER_KEY) == 400
        # An unknown key is 401 and takes nobody's tokens.
        assert await statuses(client, "wrong-key-0123456789abcdef") == 401
        ctx.clock.advance(2)
        assert [await statuses(client, API_KEY) for _ in range(2)] == [400, 429]
        metrics = (await client.get("/metrics")).text
    assert 'qrpay_rate_limited_total{limit="pos_key"} 2.0' in metrics
