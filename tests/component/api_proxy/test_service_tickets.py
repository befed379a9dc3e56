"""api-proxy's forwarded calls carry its own service ticket, never the client's (issue 11)."""

from __future__ import annotations

import httpx

from qrpay.kernel.tickets import TICKET_HEADER
from tests.support.component.api_proxy import sign_in
from tests.support.mockserver import MockServer
from tests.support.tickets import claims, signed


async def test_api_proxy_forwards_with_its_own_ticket_never_the_clients(
    proxy: httpx.AsyncClient, mockserver: MockServer
) -> None:
    route = mockserver.json_handler("/4.0/payments/v1/orders", {"status": "WAITING"}, method="GET")
    await sign_in(proxy)
    stolen = signed("iiko-integration", "payments-eda")
    answer = await proxy.get(
        "/4.0/payments/v1/orders",
        params={"order_id": "ord-1", "hmac": "ab" * 32},
        headers={TICKET_HEADER: stolen},
    )
    assert answer.status_code == 200, answer.text
    sent = route.next_call()["headers"].getall(TICKET_HEADER)
    assert len(sent) == 1
    assert sent[0] != stolen
    assert claims(sent[0], "payments-eda").source == "api-proxy"
