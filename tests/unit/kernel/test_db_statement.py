"""``Statement``: a Core statement compiled once for asyncpg, its named parameters put in the
text's order; ``by_dialect``: one statement with a part that differs by database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    String,
    Table,
    bindparam,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from qrpay.kernel.db import Statement, new_metadata
from qrpay.kernel.repository import by_dialect

things = Table(
    "things",
    new_metadata(),
    Column("id", String(32), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
)


def test_named_parameters_go_in_the_compiled_order_with_written_values_kept() -> None:
    statement = Statement(
        select(things.c.id, literal("fixed").label("word"))
        .where(things.c.n > bindparam("least"), things.c.id != bindparam("not_id"))
        .limit(bindparam("limit"))
    )
    assert statement.sql == (
        "SELECT things.id, $1::VARCHAR AS word \nFROM things \n"
        "WHERE things.n > $2::INTEGER AND things.id != $3::VARCHAR \n LIMIT $4"
    )
    args = statement.args({"limit": 5, "not_id": "x", "least": 2, "unused": 0})
    assert args == ["fixed", 2, "x", 5]


def test_a_json_parameter_goes_to_asyncpg_as_text() -> None:
    insert = Statement(
        things.insert().values(id=bindparam("id"), n=1, tags=bindparam("tags", type_=JSON))
    )
    assert insert.args({"id": "a", "tags": ["x", 1]}) == ["a", 1, '["x", 1]']


def test_a_missing_parameter_is_an_error() -> None:
    with pytest.raises(KeyError):
        Statement(select(things.c.id).where(things.c.id == bindparam("id"))).args({})


def compiled(statement: Any, dialect: Any) -> str:
    return str(statement.compile(dialect=dialect))


def test_by_dialect_renders_its_postgresql_part_there_and_its_default_elsewhere() -> None:
    statement = select(
        things.c.id, by_dialect(postgresql=func.pg_backend_pid(), default=literal(0)).label("x")
    ).where(
        by_dialect(
            postgresql=things.c.n == func.any(bindparam("ns")),
            default=things.c.n.in_(bindparam("ns", expanding=True)),
        )
    )
    assert compiled(statement, postgresql.dialect()) == (
        "SELECT things.id, pg_backend_pid() AS x \nFROM things \nWHERE things.n = any(%(ns)s)"
    )
    assert compiled(statement, sqlite.dialect()) == (
        "SELECT things.id, ? AS x \nFROM things \nWHERE things.n IN (__[POSTCOMPILE_ns])"
    )


def test_by_dialect_parts_are_in_the_cache_key() -> None:
    def one(pg: Any) -> Any:
        return select(by_dialect(postgresql=pg, default=literal(0)))

    assert one(func.now())._generate_cache_key() != one(func.random())._generate_cache_key()
    assert one(func.now())._generate_cache_key() == one(func.now())._generate_cache_key()
