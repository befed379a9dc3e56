"""On PostgreSQL too, the migration builds exactly the tables the code queries."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from qrpay.kernel.db import sync_url
from qrpay.transactions.repository import metadata

pytestmark = pytest.mark.postgres


def _diff(url: str) -> list[object]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_object": lambda _o, name, type_, *_: (
                        not (
                            type_ == "table"
                            and name is not None
                            and name.startswith("procrastinate")
                        )
                    )
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


async def test_migrations_match_the_metadata(tx_pg_url: str) -> None:
    assert await asyncio.to_thread(_diff, tx_pg_url) == []
