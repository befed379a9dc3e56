"""eda's writes come from iiko-integration (orders) and payments-eda (payments) only."""

from typing import Any

import httpx
import pytest

from tests.support.component.eda import create, create_body
from tests.support.tickets import GuardedCall


@pytest.fixture
async def order_id(client: httpx.AsyncClient) -> str:
    """An order the POS created, nothing paid."""
    order_id: str = (await create(client))["order"]["order_id"]
    return order_id


def eda(
    client: httpx.AsyncClient, method: str, path: str, route: str = "", **request: Any
) -> GuardedCall:
    return GuardedCall("eda", client, method, path, route, **request)


def start_call(client: httpx.AsyncClient, order_id: str) -> GuardedCall:
    """Start paying the whole of ``order_id`` (payment ``pay-1``)."""
    return eda(
        client,
        "POST",
        f"/v1/orders/{order_id}/payments/start",
        "/v1/orders/{order_id}/payments/start",
        json={"payment_id": "pay-1", "choice": {"way": "rest"}, "amount": "100", "currency": "RUB"},
    )


def ledger_call(client: httpx.AsyncClient, order_id: str) -> GuardedCall:
    return eda(client, "GET", f"/v1/orders/{order_id}/payments", "/v1/orders/{order_id}/payments")


async def test_orders_are_created_by_iiko_integration_only(
    client: httpx.AsyncClient,
) -> None:
    call = eda(client, "POST", "/v1/orders", json=create_body())
    await call.assert_refused("iiko-integration", wrong="payments-eda")
    for other in ("api-proxy", "cashback", "qrpay-tools"):
        assert (await call.as_caller(other)).status_code == 403, other
    allowed = await call.as_caller("iiko-integration")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["outcome"] == "created"  # nothing refused made one


async def test_payments_are_moved_by_payments_eda_only(
    client: httpx.AsyncClient, order_id: str
) -> None:
    call = start_call(client, order_id)
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    assert (await call.as_caller("api-proxy")).status_code == 403
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["status"] == "PAYMENT_IN_PROGRESS"
    for step in ("begin-rollback", "fail", "complete"):
        move = eda(
            client,
            "POST",
            f"/v1/orders/{order_id}/payments/{step}",
            f"/v1/orders/{{order_id}}/payments/{step}",
            json={"payment_id": "pay-1"},
        )
        await move.assert_refused("payments-eda", wrong="iiko-integration")
    # Nothing refused moved the payment.
    ledger = await ledger_call(client, order_id).as_caller("iiko-integration")
    assert [p["state"] for p in ledger.json()["payments"]] == ["holding"]


async def test_the_ledger_is_read_by_both_sides_and_the_overdue_list_by_payments_eda(
    client: httpx.AsyncClient, order_id: str
) -> None:
    ledger = ledger_call(client, order_id)
    await ledger.assert_refused("payments-eda", wrong="cashback")
    for caller in ("payments-eda", "iiko-integration"):
        assert (await ledger.as_caller(caller)).status_code == 200, caller
    overdue = eda(
        client,
        "GET",
        "/v1/orders/payments/overdue",
        params={"updated_before": "2026-01-01T12:00:00+00:00"},
    )
    await overdue.assert_refused("payments-eda", wrong="iiko-integration")
    assert (await overdue.as_caller("payments-eda")).status_code == 200


async def test_the_change_feed_is_read_by_iiko_integration(
    client: httpx.AsyncClient,
) -> None:
    call = eda(client, "GET", "/v1/orders/changes", params={"after": ""})
    await call.assert_refused("iiko-integration", wrong="cashback")
    assert (await call.as_caller("iiko-integration")).status_code == 200


async def test_the_support_tools_read_an_order_and_its_ledger_and_move_nothing(
    client: httpx.AsyncClient, order_id: str
) -> None:
    for path, route in (
        (f"/v1/orders/{order_id}", "/v1/orders/{order_id}"),
        (f"/v1/orders/{order_id}/payments", "/v1/orders/{order_id}/payments"),
    ):
        call = eda(client, "GET", path, route)
        await call.assert_refused("support", wrong="cashback")
        answer = await call.as_caller("support")
        assert answer.status_code == 200, answer.text
        assert answer.json()["order_id"] == order_id
    assert (await start_call(client, order_id).as_caller("support")).status_code == 403
    close = eda(client, "POST", f"/v1/orders/{order_id}/close", "/v1/orders/{order_id}/close")
    assert (await close.as_caller("support")).status_code == 403
