"""The overdue list payments-eda's sweep pages through (SQLite, frozen clock): payments
holding since before a moment and every one being rolled back, oldest change first, each
exactly once across the pages."""

from typing import Any

import httpx
from fastapi import FastAPI

from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from tests.support.component.eda import create, move, start
from tests.support.component.split import begin, open_table

OVERDUE = "/v1/orders/payments/overdue"


async def pages(client: httpx.AsyncClient, moment: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of the list, following ``next``."""
    found: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"updated_before": moment, "limit": limit}
        if after is not None:
            params["after"] = after
        answer = await client.get(OVERDUE, params=params)
        assert answer.status_code == 200, answer.text
        found.append(answer.json()["payments"])
        after = answer.json()["next"]
        if after is None:
            return found
        assert len(found) < 50, "the pages never end"


async def test_every_overdue_payment_is_listed_once_across_the_pages(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    clock = service_of(app, OrderService).clock
    assert isinstance(clock, FrozenClock)
    # Seven payments stuck holding, several changed at the same instant (a page boundary
    # falls between equal times: the id breaks the tie), on one order and on several.
    table = await open_table(client, "10", "10", "10", "10", "10", internal="table-1")
    stuck: list[str] = []
    for n in range(4):
        assert (
            await begin(client, table, f"share-{n}", "10.00", way="items", items=[n])
        ).is_success
        stuck.append(f"share-{n}")
    clock.advance(5)
    for n in range(3):
        order_id = (await create(client, f"whole-{n}"))["order"]["order_id"]
        assert (await start(client, order_id, f"whole-{n}")).status_code == 200
        stuck.append(f"whole-{n}")
    # Given back and cleared ones are not overdue.
    done = (await create(client, "done"))["order"]["order_id"]
    assert (await start(client, done, "paid")).status_code == 200
    assert (await move(client, done, "paid", "complete")).status_code == 200
    assert (await begin(client, table, "released", "10.00", way="items", items=[4])).is_success
    assert (await move(client, table, "released", "fail")).status_code == 200
    clock.advance(5)
    moment = clock.now().isoformat()
    clock.advance(5)
    # Held after the moment: not overdue yet; being rolled back: listed whatever its age.
    fresh = (await create(client, "fresh"))["order"]["order_id"]
    assert (await start(client, fresh, "fresh")).status_code == 200
    rolling = (await create(client, "rolling"))["order"]["order_id"]
    assert (await start(client, rolling, "rolling")).status_code == 200
    assert (await move(client, rolling, "rolling", "begin-rollback")).status_code == 200

    expected = [*stuck, "rolling"]  # oldest change first
    for limit in (1, 2, 3, 8, 100):
        found = await pages(client, moment, limit)
        listed = [p["payment_id"] for page in found for p in page]
        assert listed == expected, limit
        assert all(len(page) <= limit for page in found)
        assert len(found) == max(1, -(-len(expected) // limit)), limit
    first = (await pages(client, moment, 100))[0]
    assert first[0] == {
        "order_id": table,
        "payment_id": "share-0",
        "invoice_id": "share-0",
        "state": "holding",
    }
    assert first[-1]["state"] == "rolling_back"


async def test_a_payment_that_moves_while_the_sweep_pages_is_not_served_twice_before_it_moves(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The sweep rolls back what it reads: a payment it moved ranks after the cursor (its
    change is new), one it did not touch is never served again."""
    clock = service_of(app, OrderService).clock
    assert isinstance(clock, FrozenClock)
    ids = []
    for n in range(3):
        order_id = (await create(client, f"o-{n}"))["order"]["order_id"]
        assert (await start(client, order_id, f"p-{n}")).status_code == 200
        ids.append((order_id, f"p-{n}"))
        clock.advance(1)
    moment = clock.now().isoformat()
    first = await client.get(OVERDUE, params={"updated_before": moment, "limit": 1})
    assert [p["payment_id"] for p in first.json()["payments"]] == ["p-0"]
    # The sweep claims p-0's rollback, then reads on.
    assert (await move(client, ids[0][0], "p-0", "begin-rollback")).status_code == 200
    after = first.json()["next"]
    rest = await client.get(OVERDUE, params={"updated_before": moment, "after": after})
    assert [p["payment_id"] for p in rest.json()["payments"]] == ["p-1", "p-2", "p-0"]
    assert rest.json()["next"] is None


async def test_the_overdue_list_refuses_a_bad_query(client: httpx.AsyncClient) -> None:
    moment = "2026-01-01T12:00:00+00:00"
    for params, code in (
        ({"updated_before": moment, "after": "not-a-cursor"}, "bad_cursor"),
        ({"updated_before": moment, "after": "yesterday|p-1"}, "bad_cursor"),
        ({"updated_before": moment, "limit": "0"}, "invalid_request"),
        ({"updated_before": moment, "limit": "1001"}, "invalid_request"),
        ({}, "missing_field"),
    ):
        answer = await client.get(OVERDUE, params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["code"] == code, params
    empty = await client.get(OVERDUE, params={"updated_before": moment})
    assert empty.json() == {"payments": [], "next": None}
