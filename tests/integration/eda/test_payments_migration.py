"""Revision 0005 (issue 18) on a database 0004 left with payments under way, on SQLite and
on PostgreSQL: whole-bill payments in each phase and split bills' shares become payments,
their items stay taken, and the service then carries them on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.migrations import upgrade
from tests.support.component.eda import move, start
from tests.support.eda_legacy import (
    EXPECTED_ITEMS,
    EXPECTED_PAYMENTS,
    T0,
    seed_revision_0004,
)
from tests.support.postgres import SQLITE_AND_POSTGRES, either_database, sync_connection
from tests.support.services import dev_secdist, make_context, running_service


async def migrated_from_0004(url: str) -> None:
    await asyncio.to_thread(upgrade, "eda", url, "0004")
    await asyncio.to_thread(seed_revision_0004, url)
    await asyncio.to_thread(upgrade, "eda", url)


def stored(url: str) -> tuple[dict[str, tuple[Any, ...]], set[tuple[Any, ...]], list[str]]:
    """The payments, their items and the orders' columns as the migration left them."""
    with sync_connection(url) as connection:
        rows = connection.execute(
            text(
                "SELECT id, order_id, invoice_id, amount, tip, state, items, paid_seq, "
                "currency, token, version FROM payments"
            )
        ).all()
        items = connection.execute(
            text("SELECT order_id, item, payment_id FROM payment_items")
        ).all()
        columns = [c["name"] for c in inspect(connection).get_columns("orders")]
        tables = inspect(connection).get_table_names()
    assert "order_shares" not in tables
    assert "order_share_items" not in tables
    payments = {}
    for r in rows:
        assert (r.currency, r.token, r.version) == ("RUB", None, 1), r.id
        # SQLite hands JSON back as text.
        chosen = r.items if isinstance(r.items, list) else json.loads(r.items)
        payments[r.id] = (r.order_id, r.invoice_id, r.amount, r.tip, r.state, chosen, r.paid_seq)
    return payments, {tuple(i) for i in items}, columns


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FrozenClock]]:
    await migrated_from_0004(database_url)
    clock = FrozenClock(T0.replace(hour=13))
    ctx = make_context(
        "eda", tmp_path / "eda", secdist=dev_secdist(databases={"eda": database_url}), clock=clock
    )
    async with running_service(ctx) as (_app, client):
        yield client, clock


@pytest.fixture(params=SQLITE_AND_POSTGRES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with either_database(request, tmp_path / "eda-0004.db") as url:
        yield url


async def ledger(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/orders/{order_id}/payments")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_0005_turns_whole_bill_payments_and_shares_into_payments(
    service: tuple[httpx.AsyncClient, FrozenClock], database_url: str
) -> None:
    payments, items, columns = stored(database_url)
    assert payments == EXPECTED_PAYMENTS
    assert items == EXPECTED_ITEMS
    assert "payment_id" not in columns
    assert "payment_phase" not in columns
    client, _clock = service

    whole = await ledger(client, "o-hold")
    assert (whole["status"], whole["held"], whole["left"]) == (
        "PAYMENT_IN_PROGRESS",
        "100.00",
        "0.00",
    )
    split = await ledger(client, "o-split")
    assert (split["status"], split["paid"], split["held"], split["left"], split["tips"]) == (
        "WAITING",
        "50.00",
        "25.00",
        "25.00",
        "2.00",
    )
    assert split["taken_items"] == [0, 2]
    assert (await ledger(client, "o-split-paid"))["status"] == "PAYED"
    assert (await ledger(client, "o-given-back"))["payments"] == []


async def test_the_service_carries_migrated_payments_on(
    service: tuple[httpx.AsyncClient, FrozenClock],
) -> None:
    client, _clock = service
    # The sweep finds the legacy payments under way, invoiced on their orders.
    overdue = await client.get(
        "/v1/orders/payments/overdue", params={"updated_before": T0.replace(hour=13).isoformat()}
    )
    assert sorted(
        (p["payment_id"], p["invoice_id"], p["state"]) for p in overdue.json()["payments"]
    ) == [
        ("legacy-hold", "o-hold", "holding"),
        ("legacy-roll", "o-roll", "rolling_back"),
        ("s-hold", "s-hold", "holding"),
    ]

    # The legacy hold's clear completes it: the order is PAYED.
    done = await move(client, "o-hold", "legacy-hold", "complete")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["payments"][0]["paid_seq"]) == ("PAYED", 1)
    # A legacy payment claimed by its clear is never rolled back; its clear completes it.
    claimed = await move(client, "o-clear", "legacy-clear", "begin-rollback")
    assert (claimed.status_code, claimed.json()["code"]) == (409, "payment_clearing")
    assert (await move(client, "o-clear", "legacy-clear", "complete")).json()["status"] == "PAYED"
    # A legacy rollback gives the payment back; the order is payable again.
    released = await move(client, "o-roll", "legacy-roll", "fail")
    assert (released.json()["status"], released.json()["left"]) == ("WAITING", "100.00")
    again = await start(client, "o-roll", "new-pay", "100.00")
    assert again.status_code == 200, again.text
    assert again.json()["payments"][-1]["invoice_id"] == "new-pay"
    # A paid legacy order stays paid.
    paid = await start(client, "o-paid", "late", "100.00")
    assert (paid.status_code, paid.json()["code"]) == (409, "already_paid")

    # The split bill: its taken items stay taken, the released one is free, the paid order
    # of its shares goes on.
    taken = await start(client, "o-split", "g1", "40.00", choice={"way": "items", "items": [0]})
    assert (taken.status_code, taken.json()["code"]) == (409, "item_taken")
    quote = await client.get(
        "/v1/orders/o-split/payments/quote", params={"way": "items", "items": [1]}
    )
    assert quote.json() == {"amount": "25.00", "left": "25.00"}
    free = await start(client, "o-split", "g2", "25.00", choice={"way": "items", "items": [1]})
    assert (free.status_code, free.json()["status"]) == (200, "PAYMENT_IN_PROGRESS")
    assert (await move(client, "o-split", "g2", "complete")).status_code == 200
    done_split = (await move(client, "o-split", "s-hold", "complete")).json()
    assert done_split["status"] == "PAYED"
    seqs = {p["payment_id"]: p["paid_seq"] for p in done_split["payments"]}
    assert seqs == {"s-paid-early": 1, "s-paid-late": 2, "g2": 3, "s-hold": 4, "s-released": None}
