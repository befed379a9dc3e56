"""The support tools' read (issue 19): an order's invoices with their operations, to the
support tools only."""

from tests.support.component.transactions import Transactions
from tests.support.tickets import GuardedCall

ROUTE = "/v1/invoices"


def by_order(tx: Transactions, order_id: str) -> GuardedCall:
    return GuardedCall(
        "transactions", tx.client, "GET", ROUTE, ROUTE, params={"order_id": order_id}
    )


async def test_an_orders_invoices_come_with_their_operations(tx: Transactions) -> None:
    assert (await tx.invoice("inv-1")).status_code == 200
    assert (await tx.invoice("inv-2")).status_code == 200
    assert (await tx.invoice("inv-3", order_id="order-2")).status_code == 200
    assert (await tx.hold("h1")).status_code == 200
    await tx.service.process_pending()
    answer = await by_order(tx, "order-1").as_caller("support")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_id"] == "order-1"
    assert [i["invoice_id"] for i in body["invoices"]] == ["inv-1", "inv-2"]
    first = body["invoices"][0]
    assert [(op["operation_id"], op["kind"], op["status"]) for op in first["operations"]] == [
        ("h1", "hold", "succeeded")
    ]
    assert first["held"] == "100.00"
    assert body["invoices"][1]["operations"] == []
    unknown = await by_order(tx, "no-such-order").as_caller("support")
    assert unknown.status_code == 200
    assert unknown.json() == {"order_id": "no-such-order", "invoices": []}


async def test_only_the_support_tools_read_an_orders_invoices(tx: Transactions) -> None:
    call = by_order(tx, "order-1")
    await call.assert_refused("support", wrong="payments-eda")
    for other in ("api-proxy", "eda", "cashback", "qrpay-tools"):
        assert (await call.as_caller(other)).status_code == 403, other
    missing = GuardedCall("transactions", tx.client, "GET", ROUTE, ROUTE)
    assert (await missing.as_caller("support")).status_code == 400
    # The owner's routes stay the owner's: support reads through this route only.
    single = GuardedCall(
        "transactions", tx.client, "GET", "/v1/invoices/inv-1", "/v1/invoices/{invoice_id}"
    )
    assert (await single.as_caller("support")).status_code == 403
