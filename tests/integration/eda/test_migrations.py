"""On PostgreSQL too, the migration builds exactly the tables the code queries."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from qrpay.eda.repository import metadata
from qrpay.kernel.db import sync_url


def test_migrations_match_the_metadata(eda_pg_url: str) -> None:
    engine = create_engine(sync_url(eda_pg_url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []
