"""The hand-written migration builds exactly the tables the code queries."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from qrpay.cashback.repository import metadata
from qrpay.kernel.migrations import upgrade


def test_migrations_match_the_metadata(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cashback.db'}"
    upgrade("cashback", url)
    engine = create_engine(f"sqlite:///{tmp_path / 'cashback.db'}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []
