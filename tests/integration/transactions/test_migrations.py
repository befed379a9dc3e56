"""On PostgreSQL too, the migration builds exactly the tables the code queries."""

from __future__ import annotations

import asyncio

import pytest

from qrpay.transactions.repository import metadata
from tests.support.postgres import metadata_diff

pytestmark = pytest.mark.postgres


async def test_migrations_match_the_metadata(migrated_pg_url: str) -> None:
    assert await asyncio.to_thread(metadata_diff, migrated_pg_url, metadata) == []
