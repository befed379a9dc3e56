"""eda's writes come from iiko-integration (orders) and payments-eda (payments) only."""

import httpx

from tests.support.component.eda import create, create_body
from tests.support.tickets import GuardedCall


async def test_orders_are_created_by_iiko_integration_only(
    client: httpx.AsyncClient,
) -> None:
    call = GuardedCall(
        "eda",
        client,
        "POST",
        "/v1/orders",
        "/v1/orders",
        json=create_body(),
    )
    await call.assert_refused("iiko-integration", wrong="payments-eda")
    for other in ("api-proxy", "cashback", "qrpay-tools"):
        assert (await call.as_caller(other)).status_code == 403, other
    allowed = await call.as_caller("iiko-integration")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["outcome"] == "created"  # nothing refused made one


async def test_payments_are_moved_by_payments_eda_only(
    client: httpx.AsyncClient,
) -> None:
    order_id = (await create(client))["order"]["order_id"]
    call = GuardedCall(
        "eda",
        client,
        "POST",
        f"/v1/orders/{order_id}/payment/start",
        "/v1/orders/{order_id}/payment/start",
        json={"payment_id": "pay-1", "amount": "100", "currency": "RUB"},
    )
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    assert (await call.as_caller("api-proxy")).status_code == 403
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["status"] == "PAYMENT_IN_PROGRESS"


async def test_the_change_feed_is_read_by_iiko_integration(
    client: httpx.AsyncClient,
) -> None:
    call = GuardedCall(
        "eda",
        client,
        "GET",
        "/v1/orders/changes",
        "/v1/orders/changes",
        params={"after": ""},
    )
    await call.assert_refused("iiko-integration", wrong="cashback")
    assert (await call.as_caller("iiko-integration")).status_code == 200
