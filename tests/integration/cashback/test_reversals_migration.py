"""Revision 0002 (issue 19) on a database 0001 left with accruals, on SQLite and on
PostgreSQL: the accruals stay as they were, and the service reverses them and keeps
accruing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.migrations import upgrade
from tests.support.component.cashback import accrue, reverse
from tests.support.postgres import SQLITE_AND_POSTGRES, either_database, sync_connection
from tests.support.services import dev_secdist, make_context, running_service

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
# Accruals as 0001 stored them: (order_id, user_id, amount, currency, source).
LEGACY = [
    ("o-whole", "u1", "10.00", "RUB", "rest-1"),
    ("o-split.s1", "u1", "2.50", "RUB", "rest-1"),
    ("o-split.s2", "u2", "1.00", "RUB", "rest-2"),
    ("o-yen", "u1", "7", "JPY", "rest-3"),
]


def seed_revision_0001(url: str) -> None:
    with sync_connection(url, write=True) as connection:
        for order_id, user_id, amount, currency, source in LEGACY:
            connection.execute(
                text(
                    "INSERT INTO accruals (order_id, user_id, amount, currency, source, "
                    "created_at) VALUES (:o, :u, :a, :c, :s, :t)"
                ),
                {"o": order_id, "u": user_id, "a": amount, "c": currency, "s": source, "t": T0},
            )


def stored(url: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    with sync_connection(url) as connection:
        rows = connection.execute(
            text(
                "SELECT order_id, user_id, amount, currency, source FROM accruals ORDER BY order_id"
            )
        ).all()
        tables = inspect(connection).get_table_names()
    return [tuple(r) for r in rows], tables


@pytest.fixture(params=SQLITE_AND_POSTGRES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with either_database(request, tmp_path / "cashback-0001.db") as url:
        yield url


async def test_0002_keeps_the_accruals_and_the_service_reverses_them(
    tmp_path: Path, database_url: str
) -> None:
    await asyncio.to_thread(upgrade, "cashback", database_url, "0001")
    await asyncio.to_thread(seed_revision_0001, database_url)
    await asyncio.to_thread(upgrade, "cashback", database_url)

    rows, tables = stored(database_url)
    assert rows == sorted(LEGACY)
    assert {"reversals", "debt_repayments", "accounts"} <= set(tables)

    clock = FrozenClock(T0.replace(hour=13))
    ctx = make_context(
        "cashback",
        tmp_path / "cashback",
        secdist=dev_secdist(databases={"cashback": database_url}),
        clock=clock,
    )
    async with running_service(ctx) as (_app, client):
        balance = (await client.get("/v1/users/u1/balance")).json()
        assert balance["balances"] == [
            {"currency": "JPY", "amount": "7", "debt": "0"},
            {"currency": "RUB", "amount": "12.50", "debt": "0.00"},
        ]
        reversed_ = await reverse(client, "o-split.s1", "refund-1.1", amount="2.50")
        assert reversed_.status_code == 200, reversed_.text
        too_much = await reverse(client, "o-split.s1", "refund-2.1", amount="0.01")
        assert too_much.json()["code"] == "reversal_exceeds_accrual"
        clock.advance(timedelta(minutes=1))
        assert (await accrue(client, "o-new.s1", amount="1")).status_code == 200
        order = (await client.get("/v1/cashback/orders/o-split")).json()
        assert [a["order_id"] for a in order["accruals"]] == ["o-split.s1", "o-split.s2"]
        assert [r["reversal_id"] for r in order["reversals"]] == ["refund-1.1"]
        entries = (await client.get("/v1/cashback/history/u1")).json()["entries"]
        assert [(e["kind"], e["accrual_key"]) for e in entries] == [
            ("accrual", "o-split.s1"),
            ("accrual", "o-whole"),
            ("accrual", "o-yen"),
            ("reversal", "o-split.s1"),
            ("accrual", "o-new.s1"),
        ]
    # The legacy rows as they were, the new accrual beside them.
    assert [r for r in stored(database_url)[0] if r[0] != "o-new.s1"] == sorted(LEGACY)
