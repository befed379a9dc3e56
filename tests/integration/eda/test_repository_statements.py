"""eda's hot queries, each declared once (``kernel.db.Statement``): on PostgreSQL the text
compiled for asyncpg is what runs, and the same statements answer the same rows there as
through SQLAlchemy on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qrpay.eda import feed
from qrpay.eda import payment_repository as payment_statements
from qrpay.eda import repository as statements
from qrpay.eda.domain import Order
from qrpay.eda.ledger import Ledger
from qrpay.eda.payment_repository import PaymentRepository, fetch_ledger
from qrpay.eda.refunds import RefundPart
from qrpay.eda.repository import OrderRepository
from qrpay.eda.schemas import Bill, BillElement, PaymentState, RefundState
from qrpay.kernel.db import Database
from tests.support.ledgers import payment
from tests.support.postgres import migrate

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
# (order id, client, POS order id): two restaurants, so one restaurant's feed is a part.
ORDERS = [("o1", "rest-a", "pos-1"), ("o2", "rest-b", "pos-2"), ("o3", "rest-a", "pos-3")]


def new_order(order_id: str, client_id: str, internal_id: str, n: int) -> Order:
    amount = f"{100 + n}.00"
    bill = Bill(currency="RUB", amount=amount, elements=[BillElement(name="soup", amount=amount)])
    return Order.new(
        order_id=order_id,
        client_id=client_id,
        internal_order_id=internal_id,
        bill=bill,
        now=T0 + timedelta(seconds=n),
    )


@pytest.fixture
async def databases(migrated_pg_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Database]]:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'eda.db'}"
    await migrate("eda", sqlite_url)
    both = {"postgresql": Database(migrated_pg_url), "sqlite": Database(sqlite_url)}
    try:
        yield both
    finally:
        for db in both.values():
            await db.dispose()


async def fill(db: Database) -> list[bool | None]:
    """The same orders, a payment of o1 and a refund of it, written the way the service does."""
    inserted = []
    for n, (order_id, client_id, internal_id) in enumerate(ORDERS):
        order = new_order(order_id, client_id, internal_id, n)
        fast = await statements.insert_new_order(db, order)
        if fast is None:
            async with db.write() as session:
                fast = await OrderRepository(session).insert_if_absent(order)
        inserted.append(fast)
    again = new_order("o9", "rest-a", "pos-1", 0)  # pos-1 exists: nothing is inserted
    inserted.append(await statements.insert_new_order(db, again))
    async with db.write() as session:
        inserted.append(await OrderRepository(session).insert_if_absent(again))
        repo, payments = OrderRepository(session), PaymentRepository(session)
        order = await repo.get("o1", for_update=True)
        assert order is not None
        paid = payment("pay-1", "100.00", PaymentState.PAID, items=(0,))
        await payments.add("o1", paid, "RUB", T0 + timedelta(minutes=1))
        part = RefundPart(
            "ref-1", 0, "pay-1", Decimal("40.00"), Decimal(0), RefundState.REFUNDED, "h"
        )
        await payments.add_refund("o1", [part], "RUB", T0 + timedelta(minutes=2))
        settled = order.settle(Ledger(order.bill, (paid,)), T0 + timedelta(minutes=3))
        assert await repo.save(order, settled)
    return inserted


def numbered(rows: list[dict[str, Any]], tx: dict[int, int]) -> list[dict[str, Any]]:
    """Feed rows with each database's own change numbers as their rank among them."""
    return [{**row, "change_tx": tx[row["change_tx"]]} for row in rows]


async def read(db: Database) -> dict[str, Any]:
    everything, page = await statements.fetch_changes(db, feed.Cursor(0, ""), 10)
    tx = {number: rank for rank, number in enumerate(sorted({r["change_tx"] for r in everything}))}
    first, first_page = await statements.fetch_changes(db, feed.Cursor(0, ""), 1)
    rest_a, _ = await statements.fetch_changes(db, feed.Cursor(0, ""), 10, "rest-a")
    after_first, _ = await statements.fetch_changes(
        db, feed.Cursor(first[0]["change_tx"], first[0]["order_id"]), 10
    )
    tail = await statements.fetch_tail(db)
    return {
        "statuses": sorted(
            await statements.fetch_statuses(db, ["o3", "o1", "nope"]), key=lambda r: r["order_id"]
        ),
        "no statuses": await statements.fetch_statuses(db, []),
        "views": [
            await statements.fetch_order_view(db, order_id) for order_id in ("o1", "o2", "nope")
        ],
        "feed": (numbered(everything, tx), page),
        "first": (numbered(first, tx), first_page),
        "rest-a": numbered(rest_a, tx),
        "after first": numbered(after_first, tx),
        # The tail is past every change served.
        "tail past the feed": tail.change_tx > max(tx),
        "ledger": await fetch_ledger(db, "o1"),
        "no ledger": await fetch_ledger(db, "nope"),
    }


async def test_each_statement_answers_alike_on_postgresql_and_sqlite(
    databases: dict[str, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = databases["postgresql"]
    ran: list[str] = []
    fetch_fast = pg.fetch_fast

    async def recorded(sql: str, *args: Any) -> list[Any]:
        ran.append(sql)
        return await fetch_fast(sql, *args)

    monkeypatch.setattr(pg, "fetch_fast", recorded)

    written = {name: await fill(db) for name, db in databases.items()}
    found = {name: await read(db) for name, db in databases.items()}

    # PostgreSQL inserts in one autocommit statement; SQLite, in a transaction.
    assert written == {
        "postgresql": [True, True, True, False, False],
        "sqlite": [True, True, True, None, False],
    }
    assert found["postgresql"] == found["sqlite"]
    pg_found = found["postgresql"]
    assert [r["order_id"] for r in pg_found["statuses"]] == ["o1", "o3"]
    assert pg_found["views"][0]["status"] == "PAYED"
    assert pg_found["views"][2] is None
    assert [r["order_id"] for r in pg_found["feed"][0]] == ["o2", "o3", "o1"]
    assert [r["order_id"] for r in pg_found["rest-a"]] == ["o3", "o1"]
    assert pg_found["tail past the feed"] is True
    ledgered = pg_found["ledger"]
    assert [p.id for p in ledgered.ledger.payments] == ["pay-1"]
    assert [(r.refund_id, r.amount) for r in ledgered.ledger.refunds] == [("ref-1", 40)]
    assert pg_found["no ledger"] is None

    # What ran on asyncpg is the statements' compiled text, nothing built per call.
    compiled = {
        s.sql
        for s in (
            statements.INSERT_ORDER,
            statements.ORDER,
            statements._STATUSES,
            statements._CHANGES,
            statements._CHANGES_OF_CLIENT,
            statements._TAIL,
            payment_statements._LEDGER,
        )
    }
    assert set(ran) == compiled
