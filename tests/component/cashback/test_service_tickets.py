"""Accruals come from payments-eda only (issue 11)."""

import httpx

from qrpay.kernel.tickets import TOOLS_IDENTITY
from tests.support.component.cashback import accrual
from tests.support.tickets import GuardedCall


async def test_accruals_come_from_payments_eda_only(
    client: httpx.AsyncClient,
) -> None:
    call = GuardedCall(
        "cashback",
        client,
        "PUT",
        "/v1/accruals/o1",
        "/v1/accruals/{order_id}",
        json=accrual(),
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
