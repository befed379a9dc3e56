"""A split bill over HTTP (SQLite, frozen clock): payments that are shares, items, the order
of record, replacement bills, the TTL."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from qrpay.eda.jobs import close_expired_orders
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import TTL, changes, start, statuses, without_replayed
from tests.support.component.split import begin, move, open_table, pay_share, quote, table_bill


@pytest.fixture
async def order_id(client: httpx.AsyncClient) -> str:
    """An order of a bill of 100 at the table, nothing paid."""
    return await open_table(client, "100")


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
    # Everything left is held: no other guest can start, the POS sees a payment under way.
    assert await status_of(client, order_id) == "PAYMENT_IN_PROGRESS"
    done = (await move(client, order_id, "g3", "complete")).json()
    assert (done["status"], done["paid"], done["left"], done["tips"]) == (
        "PAYED",
        "150.00",
        "0.00",
        "5.00",
    )
    assert [(p["state"], p["paid_seq"]) for p in done["payments"]] == [
        ("paid", 1),
        ("paid", 2),
        ("paid", 3),
    ]
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
    client: httpx.AsyncClient, order_id: str
) -> None:
    seen = (await quote(client, order_id, way="rest")).json()["amount"]
    assert (
        await begin(client, order_id, "g1", "30.00", way="amount", amount="30")
    ).status_code == 200
    late = await begin(client, order_id, "g2", seen, way="rest")
    assert late.status_code == 409
    assert late.json()["code"] == "share_price_changed"
    over = await begin(client, order_id, "g3", "80.00", way="amount", amount="80")
    assert over.json()["code"] == "amount_exceeds_left"


async def test_a_repeated_start_is_the_same_share(client: httpx.AsyncClient, order_id: str) -> None:
    once = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    again = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    assert (once.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert without_replayed(again) == without_replayed(once)
    assert len(again.json()["payments"]) == 1
    other = await begin(client, order_id, "g1", "20.00", way="amount", amount="20")
    assert other.json()["code"] == "idempotency_token_reused"


async def test_a_cleared_share_is_never_given_back_nor_a_released_one_paid(
    client: httpx.AsyncClient, order_id: str
) -> None:
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    await move(client, order_id, "g1", "complete")
    for step in ("begin-rollback", "fail"):
        refused = await move(client, order_id, "g1", step)
        assert refused.status_code == 409
        assert refused.json()["code"] == "already_paid"
    await begin(client, order_id, "g2", "50.00", way="equal", parts=2)
    await move(client, order_id, "g2", "begin-rollback")
    await move(client, order_id, "g2", "fail")
    late = await move(client, order_id, "g2", "complete")
    assert late.json()["code"] == "payment_released"


async def test_split_and_whole_bill_payments_exclude_each_other(
    client: httpx.AsyncClient, order_id: str
) -> None:
    assert (await start(client, order_id, "whole", amount="100")).status_code == 200
    refused = await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    assert refused.json()["code"] == "payment_in_progress"

    # After a share, the whole bill is the share of everything left.
    other = await open_table(client, "100", internal="table-8")
    await begin(client, other, "g1", "50.00", way="equal", parts=2)
    whole = await start(client, other, "whole-8", amount="100")
    assert whole.status_code == 409
    assert whole.json()["code"] == "share_price_changed"
    rest = await start(client, other, "whole-8", amount="50")
    assert (rest.status_code, rest.json()["status"], rest.json()["left"]) == (
        200,
        "PAYMENT_IN_PROGRESS",
        "0.00",
    )


async def test_a_replacement_bill_keeps_what_guests_paid(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "60")
    await pay_share(client, order_id, "g1", "40.00", way="items", items=[0])

    assert (await replace_bill(client, "40", "60", "15")).json()["outcome"] == "bill_replaced"
    assert (await replace_bill(client, "45", "60")).json()["code"] == "taken_item_changed"
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
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


async def test_each_share_moves_the_order_in_the_change_feed(
    client: httpx.AsyncClient, order_id: str
) -> None:
    before = await changes(client)
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    after = await changes(client, before["cursor"])
    assert [c["order_id"] for c in after["changes"]] == [order_id]
    assert after["changes"][0]["version"] > before["changes"][-1]["version"]


async def test_unknown_order_share_and_bad_choices(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "-10")
    assert (await client.get("/v1/orders/nope/payments")).json()["code"] == "order_not_found"
    ghost = await move(client, order_id, "ghost", "complete")
    assert ghost.json()["code"] == "payment_not_found"
    for choice, code in (
        ({"way": "equal", "parts": 1}, "invalid_request"),
        ({"way": "items", "items": [1]}, "item_not_payable"),  # a discount line
        ({"way": "items", "items": [7]}, "unknown_item"),
        ({"way": "items", "items": [-1]}, "invalid_request"),
        ({"way": "amount", "amount": "1.001"}, "invalid_amount"),
        ({"way": "amount", "amount": "31"}, "amount_exceeds_left"),
        ({"way": "amount", "amount": "5", "items": [0]}, "invalid_request"),  # items: way items
        ({"way": "equal", "parts": 2, "items": [0]}, "invalid_request"),
    ):
        answer = await quote(client, order_id, **choice)
        assert answer.json()["code"] == code, (choice, answer.text)


async def test_the_waiter_closes_only_when_no_share_is_under_way(
    client: httpx.AsyncClient, order_id: str
) -> None:
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


async def test_a_whole_bill_start_after_shares_pays_what_is_left(
    client: httpx.AsyncClient,
) -> None:
    held = await open_table(client, "100")
    await begin(client, held, "g1", "50.00", way="equal", parts=2)
    wrong_amount = await start(client, held, "whole", amount="90")
    assert wrong_amount.json()["code"] == "share_price_changed"
    assert (await start(client, held, "whole", amount="100")).json()["code"] == (
        "share_price_changed"
    )

    paid = await open_table(client, "100", internal="table-8")
    await pay_share(client, paid, "g2", "100.00", way="rest")
    assert await status_of(client, paid) == "PAYED"
    assert (await start(client, paid, "whole", amount="100")).json()["code"] == "already_paid"


async def test_a_share_given_back_leaves_the_whole_bill_payable(
    client: httpx.AsyncClient, order_id: str
) -> None:
    await begin(client, order_id, "g1", "50.00", way="equal", parts=2)
    await move(client, order_id, "g1", "fail")
    assert (await start(client, order_id, "whole", amount="100")).status_code == 200
    assert await status_of(client, order_id) == "PAYMENT_IN_PROGRESS"
    again = await start(client, order_id, "whole", amount="100")
    assert again.status_code == 200  # a repeated start is the same payment


async def test_in_progress_while_live_payments_hold_everything_left(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "40", "60")
    await begin(client, order_id, "g1", "40.00", way="items", items=[0])
    assert await status_of(client, order_id) == "WAITING"
    await begin(client, order_id, "g2", "60.00", way="items", items=[1])
    assert await status_of(client, order_id) == "PAYMENT_IN_PROGRESS"
    busy = await begin(client, order_id, "g3", "10.00", way="amount", amount="10")
    assert busy.json()["code"] == "payment_in_progress"
    # One is given back: the order waits for another guest again.
    assert (await move(client, order_id, "g1", "fail")).json()["status"] == "WAITING"
    await begin(client, order_id, "g3", "40.00", way="items", items=[0])
    # Cleared payments cover the total only when the last of them clears.
    assert (await move(client, order_id, "g3", "complete")).json()["status"] == (
        "PAYMENT_IN_PROGRESS"
    )
    done = (await move(client, order_id, "g2", "complete")).json()
    assert (done["status"], done["paid"]) == ("PAYED", "100.00")
    # paid_seq numbers the payments in the order they cleared, not the order they began.
    assert [(p["payment_id"], p["paid_seq"]) for p in done["payments"]] == [
        ("g1", None),
        ("g2", 2),
        ("g3", 1),
    ]


async def replace_bill(client: httpx.AsyncClient, *lines: str, **bill: str) -> httpx.Response:
    body = {
        "client_id": "rest-1",
        "internal_order_id": "table-7",
        "bill": table_bill(*lines) | bill,
    }
    return await client.post("/v1/orders", json=body)


async def test_a_replacement_bill_below_what_is_paid_or_held_is_refused(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "40", "60", "20")
    await pay_share(client, order_id, "g1", "40.00", way="items", items=[0])
    await begin(client, order_id, "g2", "30.00", way="amount", amount="30")
    below = await replace_bill(client, "40", "29.99")
    assert (below.status_code, below.json()["code"]) == (409, "bill_below_paid")
    # Equal to what is paid and held: the payment under way holds everything left.
    equal = await replace_bill(client, "40", "30")
    assert (equal.status_code, equal.json()["order"]["status"]) == (200, "PAYMENT_IN_PROGRESS")
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert (ledger["total"], ledger["paid"], ledger["held"], ledger["left"]) == (
        "70.00",
        "40.00",
        "30.00",
        "0.00",
    )
    # While everything left is held the bill is locked.
    locked = await replace_bill(client, "40", "60")
    assert (locked.status_code, locked.json()["code"]) == (409, "order_locked")


async def test_a_replacement_bill_equal_to_what_is_paid_makes_the_order_payed(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "40", "60")
    await pay_share(client, order_id, "g1", "40.00", way="items", items=[0])
    before = await changes(client)
    replaced = await replace_bill(client, "40")
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["outcome"], replaced.json()["order"]["status"]) == (
        "bill_replaced",
        "PAYED",
    )
    assert await status_of(client, order_id) == "PAYED"
    assert statuses(await changes(client, before["cursor"])) == [(order_id, "PAYED")]
    assert "qrpay_orders_paid_total 1.0" in (await client.get("/metrics")).text
    late = await begin(client, order_id, "g2", "0.01", way="amount", amount="0.01")
    assert late.json()["code"] == "already_paid"


async def test_the_currency_of_an_order_with_any_payment_cannot_change(
    client: httpx.AsyncClient, order_id: str
) -> None:
    await begin(client, order_id, "g1", "10.00", way="amount", amount="10")
    await move(client, order_id, "g1", "fail")  # even one given back
    other = await replace_bill(client, "100", currency="USD")
    assert (other.status_code, other.json()["code"]) == (409, "currency_locked")
    untouched = await open_table(client, "100", internal="table-9")
    body = {"client_id": "rest-1", "internal_order_id": "table-9", "bill": table_bill("100")}
    body["bill"]["currency"] = "USD"
    moved = await client.post("/v1/orders", json=body)
    assert moved.json()["order"]["order_id"] == untouched
    assert moved.json()["order"]["bill"]["currency"] == "USD"


async def test_a_replacement_that_drops_a_taken_line_is_a_conflict_never_a_5xx(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "40", "60", "25")
    await pay_share(client, order_id, "g1", "25.00", way="items", items=[2])
    await begin(client, order_id, "g2", "40.00", way="items", items=[0])
    for lines, total in (
        (("40", "60"), "125"),  # line 2 dropped: the old code indexed it
        (("40",), "125"),
        (("41", "60", "25"), "126"),  # a held line changed
        (("40", "60", "26"), "126"),  # a paid line changed
    ):
        answer = await replace_bill(client, *lines, amount=total)
        code = "taken_item_changed"
        assert (answer.status_code, answer.json()["code"]) == (409, code), lines
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert (ledger["total"], ledger["taken_items"]) == ("125.00", [0, 2])
    kept = await replace_bill(client, "40", "70", "25")  # an untaken line may change
    assert kept.json()["order"]["bill"]["amount"] == "135.00"


async def test_no_replacement_bill_answers_5xx(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "40", "60", "25")
    await pay_share(client, order_id, "g1", "25.00", way="items", items=[2])
    await begin(client, order_id, "g2", "20.00", way="amount", amount="20")
    for lines, extra in (
        ((), {}),
        (("1",), {}),
        (("0.01",), {"amount": "0.01"}),
        (("40", "60"), {"amount": "45"}),
        (("40", "60", "25", "5"), {}),
        (("25", "25", "25"), {}),
        (("-10", "60", "25"), {}),
        (("40", "60", "25"), {"currency": "EUR"}),
        (("40", "60", "25"), {"amount": "45"}),
        (("40", "60", "25"), {"amount": "44.99"}),
    ):
        answer = await replace_bill(client, *lines, **extra)
        assert answer.status_code < 500, (lines, extra, answer.text)
    ledger = (await client.get(f"/v1/orders/{order_id}/payments")).json()
    assert Decimal(ledger["total"]) >= Decimal(ledger["paid"]) + Decimal(ledger["held"])
