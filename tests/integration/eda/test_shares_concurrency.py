"""Guests splitting one bill at once, on real PostgreSQL across two eda instances: no item
is taken twice and the shares never add up to more than the bill."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from tests.support.component.eda import start
from tests.support.component.split import begin, move, open_table, quote

pytestmark = pytest.mark.postgres


async def test_guests_racing_for_the_same_items_get_each_item_once(
    instances: list[httpx.AsyncClient],
) -> None:
    order_id = await open_table(instances[0], "10", "20", "30", "40", "50", internal="race-items")
    wanted = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0], [2], [4], [1, 3], [0, 2, 4]]
    quotes = [
        (await quote(instances[0], order_id, way="items", items=items)).json()["amount"]
        for items in wanted
    ]
    answers = await asyncio.gather(
        *(
            begin(instances[n % 2], order_id, f"g{n}", price, way="items", items=items)
            for n, (items, price) in enumerate(zip(wanted, quotes, strict=True))
        )
    )
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    refused = {a.json()["code"] for a in answers if a.status_code == 409}
    # Once the shares held cover the bill, the order is being paid: payment_in_progress.
    assert refused <= {
        "item_taken",
        "share_price_changed",
        "amount_exceeds_left",
        "payment_in_progress",
    }
    ledger = (await instances[1].get(f"/v1/orders/{order_id}/payments")).json()
    held = [s for s in ledger["payments"] if s["state"] == "holding"]
    items = [i for s in held for i in s["items"]]
    assert len(items) == len(set(items))  # never one item in two shares
    assert sum(Decimal(s["amount"]) for s in held) <= Decimal(ledger["total"])
    assert len(held) == sum(a.status_code == 200 for a in answers) >= 1


async def test_guests_racing_for_more_than_the_bill_never_exceed_it(
    instances: list[httpx.AsyncClient],
) -> None:
    order_id = await open_table(instances[0], "100", internal="race-amounts")
    answers = await asyncio.gather(
        *(
            begin(instances[n % 2], order_id, f"g{n}", "30.00", way="amount", amount="30")
            for n in range(12)
        )
    )
    assert sum(a.status_code == 200 for a in answers) == 3
    assert {a.json()["code"] for a in answers if a.status_code != 200} == {"amount_exceeds_left"}
    # The three that fit clear at once; the order is not paid until the bill is.
    winners = [f"g{n}" for n, a in enumerate(answers) if a.status_code == 200]
    done = await asyncio.gather(*(move(instances[0], order_id, g, "complete") for g in winners))
    assert all(d.status_code == 200 for d in done)
    ledger = (await instances[0].get(f"/v1/orders/{order_id}/payments")).json()
    assert (ledger["paid"], ledger["left"], ledger["status"]) == ("90.00", "10.00", "WAITING")
    rest = await begin(instances[1], order_id, "last", "10.00", way="rest")
    assert rest.status_code == 200, rest.text
    paid = (await move(instances[0], order_id, "last", "complete")).json()
    assert (paid["status"], paid["paid"]) == ("PAYED", "100.00")


async def test_a_whole_bill_start_and_a_share_racing_never_both_win(
    instances: list[httpx.AsyncClient],
) -> None:
    # Both lock the order's row first: whichever commits first, the other is refused (the
    # whole bill is the share of everything left, which the share changed).
    for n in range(10):
        order_id = await open_table(instances[0], "100", internal=f"race-whole-{n}")
        whole, share = await asyncio.gather(
            start(instances[n % 2], order_id, f"whole-{n}", amount="100"),
            begin(instances[(n + 1) % 2], order_id, f"g-{n}", "50.00", way="equal", parts=2),
        )
        ledger = (await instances[0].get(f"/v1/orders/{order_id}/payments")).json()
        if whole.status_code == 200:
            assert share.json()["code"] == "payment_in_progress", share.text
            assert ledger["status"] == "PAYMENT_IN_PROGRESS"
            assert [p["payment_id"] for p in ledger["payments"]] == [f"whole-{n}"]
        else:
            assert whole.json()["code"] == "share_price_changed", whole.text
            assert share.status_code == 200, share.text
            assert (ledger["status"], ledger["held"]) == ("WAITING", "50.00")
