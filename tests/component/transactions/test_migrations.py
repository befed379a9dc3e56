"""The hand-written migration builds exactly the tables the code queries."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from qrpay.kernel.migrations import upgrade
from qrpay.transactions.repository import metadata


def test_migrations_match_the_metadata(tmp_path: Path) -> None:
    upgrade("transactions", f"sqlite+aiosqlite:///{tmp_path / 'tx.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'tx.db'}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []
