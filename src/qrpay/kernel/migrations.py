"""Alembic, run per service: each service keeps its revisions in ``<service>/migrations``."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, Table, engine_from_config, pool
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

from qrpay.kernel.db import sync_url


def package_of(service: str) -> str:
    return service.replace("-", "_")


def alembic_config(service: str, url: str) -> Config:
    package = importlib.import_module(f"qrpay.{package_of(service)}")
    assert package.__file__ is not None
    location = Path(package.__file__).parent / "migrations"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            literal_binds=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


def _ddl(tables: tuple[Table, ...]) -> list[CreateTable | CreateIndex]:
    ddl: list[CreateTable | CreateIndex] = []
    for table in tables:
        ddl.append(CreateTable(table))
        ddl.extend(CreateIndex(index) for index in sorted(table.indexes, key=lambda i: str(i.name)))
    return ddl


def schema_fingerprint(*tables: Table) -> str:
    """A short hash of the tables' PostgreSQL DDL: what ``initial_revision`` pins."""
    dialect = postgresql.dialect()
    # Whitespace-blind: only what the statements say counts.
    text = "\n".join(" ".join(str(ddl.compile(dialect=dialect)).split()) for ddl in _ddl(tables))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class DeclarationChanged(RuntimeError):
    """A declared table no longer matches the initial revision that creates it."""


def initial_revision(
    fingerprint: str, *tables: Table
) -> tuple[Callable[[], None], Callable[[], None]]:
    """``upgrade, downgrade`` of a service's first revision, made from its declared tables.

    The tables are declared once, in the service's ``repository.py``; the first revision
    creates them from there (tables in order, then their indexes) instead of a hand copy.
    That is right only while the declarations are what the revision created: the
    revision pins their ``schema_fingerprint`` and refuses to run once they differ.
    Changing a table means a new revision for the change, and writing this one's tables
    out as they were (a frozen copy) in place of the declarations.
    """

    def upgrade() -> None:
        from alembic import op

        found = schema_fingerprint(*tables)
        if found != fingerprint:
            names = ", ".join(table.name for table in tables)
            raise DeclarationChanged(
                f"the declared tables ({names}) changed since this revision: their fingerprint "
                f"is {found}, the revision pins {fingerprint}. Add a revision for the change "
                "and freeze this one (write its tables out as they were)."
            )
        for statement in _ddl(tables):
            op.execute(statement)

    def downgrade() -> None:
        from alembic import op

        for table in reversed(tables):
            op.execute(DropTable(table))

    return upgrade, downgrade
