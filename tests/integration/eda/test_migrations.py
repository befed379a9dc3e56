"""On PostgreSQL too, the migration builds exactly the tables the code queries."""

from qrpay.eda.repository import metadata
from tests.support.postgres import metadata_diff


def test_migrations_match_the_metadata(migrated_pg_url: str) -> None:
    assert metadata_diff(migrated_pg_url, metadata) == []
