"""A split bill over HTTP (SQLite, frozen clock): shares, items, the order of record, TTL."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import TTL, changes, start
from tests.support.component.split import begin, move, open_table, pay_share, quote, table_bill


async def status_of(client: httpx.AsyncClient, order_id: str) -> str:
    return str((await client.get(f"/v1/orders/{order_id}")).json()["status"])


async def test_three_guests_pay_items_an_equal_share_and_the_rest(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "40", "35", "25", "50")
    first = await quote(client, order_id, way="items", items=[0, 2])
    assert first.json() == {"amount": "65.00", "left": "150.00"}
    ledger = await pay_share(client, order_id, "g1", "65.00", way="items", items=[0, 2])
    assert (ledger["paid"], ledger["left"], ledger["taken_items"]) == ("65.00", "85.00", [0, 2])
    assert ledger["status"] == "WAITING"

    equal = (await quote(client, order_id, way="equal", parts=3)).json()["amount"]
    assert equal == "50.00"
    await pay_share(client, order_id, "g2", equal, way="equal", parts=3)
    rest = (await quote(client, order_id, way="rest")).json()["amount"]
    assert rest == "35.00"
    started = await begin(client, order_id, "g3", rest, tip="5.00", way="rest")
    assert started.json()["held"] == "35.00"
    assert await status_of(client, order_id) == "WAITING"  # an old POS sees it unpaid
    await move(client, order_id, "g3", "claim-clear")
    done = (await move(client, order_id, "g3", "complete")).json()
    assert (done["status"], done["paid"], done["left"], done["tips"]) == (
        "PAYED",
        "150.00",
        "0.00",
        "5.00",
    )
    assert [s["state"] for s in done["shares"]] == ["paid", "paid", "paid"]
    assert await status_of(client, order_id) == "PAYED"


async def test_an_item_taken_by_another_guest_is_refused(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "60")
    assert (await begin(client, order_id, "g1", "40.00", way="items", items=[0])).status_code == 200
    taken = await begin(client, order_id, "g2", "40.00", way="items", items=[0])
    assert taken.status_code == 409
    assert taken.json()["code"] == "item_taken"
    # Given back, the item is free again.
    await move(client, order_id, "g1", "fail")
    assert (await begin(client, order_id, "g2", "40.00", way="items", items=[0])).status_code == 200


async def test_a_price_that_changed_meanwhile_is_refused_not_charged(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "100")
    seen = (await quote(client, order_id, way="rest")).json()["amount"]
    assert (
        await begin(client, order_id, "g1", "30.00", way="amount", amount="30")
    ).status_code == 200
    late = await begin(client, order_id, "g2", seen, way="rest")
    assert late.status_code == 409
    assert late.json()["code"] == "share_price_changed"
    over = await begin(client, order_id, "g3", "80.00", way="amount", amount="80")
    assert over.json()["code"] == "amount_exceeds_left"


async def test_a_repeated_start_is_the_same_share(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "100")
    once = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    again = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    assert again.json() == once.json()
    assert len(again.json()["shares"]) == 1
    other = await begin(client, order_id, "g1", "20.00", way="amount", amount="20")
    assert other.json()["code"] == "share_mismatch"


async def test_a_share_claimed_by_its_clear_is_never_given_back(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "100")
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    await move(client, order_id, "g1", "claim-clear")
    refused = await move(client, order_id, "g1", "begin-rollback")
    assert refused.status_code == 409
    assert refused.json()["code"] == "payment_clearing"
    await begin(client, order_id, "g2", "50.00", way="equal", parts=2)
    await move(client, order_id, "g2", "begin-rollback")
    await move(client, order_id, "g2", "fail")
    late = await move(client, order_id, "g2", "complete")
    assert late.json()["code"] == "share_released"


async def test_split_and_whole_bill_payments_exclude_each_other(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "100")
    assert (await start(client, order_id, "whole", amount="100")).status_code == 200
    refused = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    assert refused.json()["code"] == "payment_in_progress"

    other = await open_table(client, "100", internal="table-8")
    await begin(client, other, "g1", "50.00", way="equal", parts=2)
    whole = await start(client, other, "whole", amount="100")
    assert whole.status_code == 409
    assert whole.json()["code"] == "split_under_way"


async def test_a_replacement_bill_keeps_what_guests_paid(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "60")
    await pay_share(client, order_id, "g1", "40.00", way="items", items=[0])

    async def replace(*lines: str) -> httpx.Response:
        body = {"client_id": "rest-1", "internal_order_id": "table-7", "bill": table_bill(*lines)}
        return await client.post("/v1/orders", json=body)

    assert (await replace("40", "60", "15")).json()["outcome"] == "bill_replaced"
    assert (await replace("45", "60")).json()["code"] == "taken_item_changed"
    ledger = (await client.get(f"/v1/orders/{order_id}/shares")).json()
    assert (ledger["total"], ledger["left"]) == ("115.00", "75.00")


async def test_the_ttl_leaves_an_order_with_shares_to_the_waiter(
    client: httpx.AsyncClient, app: FastAPI, frozen_clock: FrozenClock
) -> None:
    shared = await open_table(client, "100")
    given_back = await open_table(client, "100", internal="table-8")
    await pay_share(client, shared, "g1", "50.00", way="equal", parts=2)
    await begin(client, given_back, "g2", "50.00", way="equal", parts=2)
    await move(client, given_back, "g2", "fail")
    frozen_clock.advance(10 * TTL)
    assert await close_expired_orders(service_of(app, OrderService), TTL) == 1
    assert await status_of(client, shared) == "WAITING"
    assert await status_of(client, given_back) == "CANCELED"


async def test_each_share_moves_the_order_in_the_change_feed(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "100")
    before = await changes(client)
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    after = await changes(client, before["cursor"])
    assert [c["order_id"] for c in after["changes"]] == [order_id]
    assert after["changes"][0]["version"] > before["changes"][-1]["version"]


async def test_unknown_order_share_and_bad_choices(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "-10")
    assert (await client.get("/v1/orders/nope/shares")).json()["code"] == "order_not_found"
    assert (await move(client, order_id, "ghost", "complete")).json()["code"] == "share_not_found"
    for choice, code in (
        ({"way": "equal", "parts": 1}, "invalid_request"),
        ({"way": "items", "items": [1]}, "item_not_payable"),  # a discount line
        ({"way": "items", "items": [7]}, "unknown_item"),
        ({"way": "items", "items": [-1]}, "invalid_request"),
        ({"way": "amount", "amount": "1.001"}, "invalid_amount"),
        ({"way": "amount", "amount": "31"}, "amount_exceeds_left"),
    ):
        answer = await quote(client, order_id, **choice)
        assert answer.json()["code"] == code, (choice, answer.text)


async def test_the_waiter_closes_only_when_no_share_is_under_way(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "100")
    await pay_share(client, order_id, "g1", "50.00", way="equal", parts=2)
    await begin(client, order_id, "g2", "50.00", way="equal", parts=2)
    busy = await client.post(f"/v1/orders/{order_id}/close")
    assert (busy.status_code, busy.json()["code"]) == (409, "payment_in_progress")
    await move(client, order_id, "g2", "fail")
    closed = await client.post(f"/v1/orders/{order_id}/close")
    assert closed.json()["status"] == "CLOSED"
    assert (await client.post(f"/v1/orders/{order_id}/close")).json()["status"] == "CLOSED"
    late = await begin(client, order_id, "g3", "50.00", way="rest")
    assert late.json()["code"] == "order_closed"


async def test_a_split_bill_refuses_a_whole_bill_start_before_any_other_answer(
    client: httpx.AsyncClient,
) -> None:
    # The whole-bill start asks for shares in its write; every way it ends without writing
    # (a wrong amount, a paid order, a write that matched nothing) still answers
    # split_under_way first, as when the shares were read before deciding.
    held = await open_table(client, "100")
    await begin(client, held, "g1", "50.00", way="equal", parts=2)
    wrong_amount = await start(client, held, "whole", amount="90")
    assert wrong_amount.json()["code"] == "split_under_way"
    assert (await start(client, held, "whole", amount="100")).json()["code"] == "split_under_way"

    paid = await open_table(client, "100", internal="table-8")
    await pay_share(client, paid, "g2", "100.00", way="rest")
    assert await status_of(client, paid) == "PAYED"
    assert (await start(client, paid, "whole", amount="100")).json()["code"] == "split_under_way"


async def test_a_share_given_back_leaves_the_whole_bill_payable(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "100")
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    await move(client, order_id, "g1", "fail")
    assert (await start(client, order_id, "whole", amount="100")).status_code == 200
    assert await status_of(client, order_id) == "PAYMENT_IN_PROGRESS"
    again = await start(client, order_id, "whole", amount="100")
    assert again.status_code == 200  # a repeated start is the same payment
