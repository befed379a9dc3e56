"""transactions' operations come from their invoice's owner only (issue 11)."""

from prometheus_client.parser import text_string_to_metric_families

from tests.support.component.transactions import INVOICE, OK, Transactions
from tests.support.tickets import GuardedCall, refusals


def guarded(tx: Transactions, method: str, path: str, route: str, body: object) -> GuardedCall:
    return GuardedCall("transactions", tx.client, method, path, route, json=body)


async def test_holds_clears_and_voids_come_from_payments_eda_only(tx: Transactions) -> None:
    operations = "/v1/invoices/{invoice_id}/operations"
    hold = {"operation_id": "h1", "kind": "hold", "amount": "100", "payment_method": OK}
    create = guarded(tx, "PUT", "/v1/invoices/inv-1", "/v1/invoices/{invoice_id}", INVOICE)
    await create.assert_refused("payments-eda", wrong="cashback")
    assert (await create.as_caller("payments-eda")).status_code == 200
    start = guarded(tx, "POST", "/v1/invoices/inv-1/operations", operations, hold)
    await start.assert_refused("payments-eda", wrong="iiko-integration")
    for other in ("api-proxy", "eda", "qrpay-tools"):
        assert (await start.as_caller(other)).status_code == 403, other
    assert (await tx.get())["operations"] == []  # nothing refused started anything
    void = guarded(
        tx,
        "POST",
        "/v1/invoices/inv-1/operations/h1/void",
        "/v1/invoices/{invoice_id}/operations/{operation_id}/void",
        {"release_operation_id": "h1.unhold"},
    )
    await void.assert_refused("payments-eda", wrong="cashback")
    assert (await start.as_caller("payments-eda")).status_code == 200


async def test_an_invoice_is_its_owners_only(tx: Transactions) -> None:
    route = "/v1/invoices/{invoice_id}"
    before = await refusals(tx.client, route, "payments-eda", "not_owner")
    # A service creates invoices for itself only: their callbacks go to the owner.
    other = guarded(tx, "PUT", "/v1/invoices/inv-2", route, {**INVOICE, "owner": "cashback"})
    refused = await other.as_caller("payments-eda")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "service_not_allowed"
    assert await refusals(tx.client, route, "payments-eda", "not_owner") == before + 1
    missing = await tx.client.get("/v1/invoices/inv-2")
    assert missing.status_code == 404  # nothing was created
    text = (await tx.client.get("/metrics")).text
    assert any(
        family.name == "qrpay_service_ticket_refusals"
        for family in text_string_to_metric_families(text)
    )
