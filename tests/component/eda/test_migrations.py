"""The hand-written migration builds exactly the tables the code queries."""

from pathlib import Path

from qrpay.eda.repository import metadata
from tests.support.postgres import sqlite_migration_diff


def test_migrations_match_the_metadata(tmp_path: Path) -> None:
    assert sqlite_migration_diff("eda", tmp_path, metadata) == []
