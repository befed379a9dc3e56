"""Accruals and reversals come from payments-eda only (issues 11, 19); balances, history
and an order's cashback are read by the tools."""

import httpx

from qrpay.kernel.tickets import TOOLS_IDENTITY
from tests.support.component.cashback import accrual, accrue
from tests.support.tickets import GuardedCall


async def test_accruals_come_from_payments_eda_only(
    client: httpx.AsyncClient,
) -> None:
    call = GuardedCall(
        "cashback", client, "PUT", "/v1/accruals/o1", "/v1/accruals/{order_id}", json=accrual()
    )
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    for other in ("api-proxy", "transactions", TOOLS_IDENTITY):
        assert (await call.as_caller(other)).status_code == 403, other
    balance = await client.get("/v1/users/u1/balance")
    assert balance.json()["balances"] == []  # nothing refused was accrued
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["created"] is True


async def test_balances_are_not_for_every_service(
    client: httpx.AsyncClient,
) -> None:
    call = GuardedCall(
        "cashback",
        client,
        "GET",
        "/v1/users/u1/balance",
        "/v1/users/{user_id}/balance",
    )
    await call.assert_refused(TOOLS_IDENTITY, wrong="iiko-integration")
    assert (await call.as_caller(TOOLS_IDENTITY)).status_code == 200


async def test_reversals_come_from_payments_eda_only(client: httpx.AsyncClient) -> None:
    assert (await accrue(client)).status_code == 200
    call = GuardedCall(
        "cashback",
        client,
        "PUT",
        "/v1/cashback/accruals/o1/reversals/r1",
        "/v1/cashback/accruals/{accrual_key}/reversals/{reversal_id}",
        json={"amount": "1", "currency": "RUB"},
    )
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    for other in ("api-proxy", "transactions", "eda", TOOLS_IDENTITY):
        assert (await call.as_caller(other)).status_code == 403, other
    history = (await client.get("/v1/cashback/history/u1")).json()
    assert [e["kind"] for e in history["entries"]] == ["accrual"]  # nothing refused reversed
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["created"] is True


async def test_the_history_is_for_the_tools_only(client: httpx.AsyncClient) -> None:
    path, route = "/v1/cashback/history/u1", "/v1/cashback/history/{user_id}"
    call = GuardedCall("cashback", client, "GET", path, route)
    await call.assert_refused(TOOLS_IDENTITY, wrong="payments-eda")
    assert (await call.as_caller(TOOLS_IDENTITY)).status_code == 200


async def test_an_orders_cashback_is_read_by_payments_eda_and_support(
    client: httpx.AsyncClient,
) -> None:
    """payments-eda reads what a payment accrued before a refund takes its share back;
    support looks at an order across services."""
    call = GuardedCall(
        "cashback", client, "GET", "/v1/cashback/orders/o1", "/v1/cashback/orders/{order_id}"
    )
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    for caller in ("payments-eda", "support", TOOLS_IDENTITY):
        assert (await call.as_caller(caller)).status_code == 200, caller
