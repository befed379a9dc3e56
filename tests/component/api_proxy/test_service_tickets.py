"""api-proxy's forwarded calls carry its own service ticket, never the client's (issue 11)."""

from __future__ import annotations

import time

import httpx

from qrpay.kernel.tickets import TICKET_HEADER, key_id, sign, verify
from tests.support.component.api_proxy import sign_in
from tests.support.mockserver import MockServer
from tests.support.tickets import dev_ticket_key


async def test_api_proxy_forwards_with_its_own_ticket_never_the_clients(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/orders", {"status": "WAITING"}, method="GET")
    await sign_in(proxy)
    stolen = sign("iiko-integration", dev_ticket_key(), int(time.time()))
    answer = await proxy.get(
        "/4.0/payments/v1/orders",
        params={"order_id": "ord-1", "hmac": "ab" * 32},
        headers={TICKET_HEADER: stolen},
    )
    assert answer.status_code == 200, answer.text
    sent = route.next_call()["headers"].getall(TICKET_HEADER)
    assert len(sent) == 1
    assert sent[0] != stolen
    key = dev_ticket_key()
    now = int(time.time())
    assert verify(sent[0], {key_id(key): key}, now).source == "api-proxy"
