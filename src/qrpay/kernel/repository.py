"""What every repository repeats: the dialect's upsert, rows to records and back, and an
expression that differs by database (``by_dialect``) inside a statement declared once.

A repository is a ``Repository`` over one connection. Records are the domain's
dataclasses; ``record_of`` builds one from a row by its field types (enums,
``Decimal``, ``bool``; every timestamp made timezone-aware UTC) and ``values_of``
turns one into column values (enums stored by value).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, get_args, get_type_hints

import orjson
from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from qrpay.kernel.clock import utc
from qrpay.kernel.db import Statement

R = TypeVar("R")
Convert = Callable[[Any], Any]


def dialect_insert(connection: AsyncConnection, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's database."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    return insert(table)


class _ByDialect(ColumnElement[Any]):
    __visit_name__ = "by_dialect"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own declaration, a list)
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("default", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, postgresql: ColumnElement[Any], default: ColumnElement[Any]) -> None:
        self.postgresql = postgresql
        self.default = default
        self.type = default.type

    @property
    def _from_objects(self) -> list[Any]:
        return self.default._from_objects

    def self_group(self, against: Any = None) -> Any:
        # Each side groups itself; a condition stays a condition (no ``= 1`` on SQLite).
        return self


def by_dialect(*, postgresql: ColumnElement[Any], default: ColumnElement[Any]) -> Any:
    """``postgresql`` where the statement runs on PostgreSQL, ``default`` elsewhere (SQLite):
    one statement for both, and its cache key covers both."""
    return _ByDialect(postgresql, default)


@compiles(_ByDialect)
def _compile_default(element: _ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.default, **kw)


@compiles(_ByDialect, "postgresql")
def _compile_postgresql(element: _ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.postgresql, **kw)


def from_json(value: Any) -> Any:
    """A JSON column's value as either path reads it: asyncpg's fast pool gives the text,
    SQLAlchemy the parsed value."""
    return orjson.loads(value) if isinstance(value, str) else value


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _converter(hint: Any) -> Convert | None:
    options = get_args(hint) or (hint,)
    if datetime in options:
        return _utc_or_none
    if isinstance(hint, type) and issubclass(hint, enum.Enum | Decimal | bool):
        return hint
    return None


@functools.cache
def _converters(cls: type) -> tuple[tuple[str, Convert | None], ...]:
    hints = get_type_hints(cls)
    return tuple((item.name, _converter(hints[item.name])) for item in dataclasses.fields(cls))


def record_of(cls: type[R], row: Row[Any] | Mapping[str, Any], *, prefix: str = "") -> R:
    """The dataclass ``cls`` from the row's columns named like its fields (after ``prefix``)."""
    mapping: Mapping[str, Any] = row._mapping if isinstance(row, Row) else row  # type: ignore[assignment]
    values = {}
    for name, convert in _converters(cls):  # type: ignore[arg-type]
        key = prefix + name
        if key not in mapping:
            continue  # a field the table does not store keeps its default
        value = mapping[key]
        values[name] = value if convert is None or value is None else convert(value)
    return cls(**values)


def values_of(record: Any, **overrides: Any) -> dict[str, Any]:
    """The record's fields as column values (enums by value), with ``overrides`` on top."""
    values = {
        item.name: getattr(record, item.name) for item in dataclasses.fields(record)
    } | overrides
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


class Repository:
    """A repository over one connection (a transaction from ``Database.write``/``read``)."""

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def insert_new(self, table: Table, values: Mapping[str, Any], *keys: str) -> bool:
        """Insert unless a row with the same ``keys`` exists; True when this call inserted."""
        statement = (
            dialect_insert(self.session, table)
            .values(values)
            .on_conflict_do_nothing(index_elements=list(keys))
        )
        return await self.changed_one(statement)

    async def find(
        self, table: Table, make: Callable[[Row[Any]], R], *, for_update: bool = False, **key: Any
    ) -> R | None:
        """The row of ``table`` whose columns equal ``key``, as ``make`` builds it; None when
        there is none. ``for_update``: locked until the transaction ends (PostgreSQL; SQLite's
        write transactions already hold the database lock, BEGIN IMMEDIATE)."""
        statement = select(table).where(*(table.c[name] == value for name, value in key.items()))
        if for_update:
            statement = statement.with_for_update()
        return await self.first(statement, make)

    async def changed_one(self, statement: Executable) -> bool:
        """Run a write; True when it changed exactly one row."""
        result = await self.session.execute(statement)
        return bool(result.rowcount == 1)

    async def first(
        self, statement: Executable, make: Callable[[Row[Any]], R], **params: Any
    ) -> R | None:
        row = (await self.session.execute(statement, params)).first()
        return None if row is None else make(row)

    async def fetch(self, statement: Statement, **params: Any) -> Sequence[Sequence[Any]]:
        """``Database.fetch`` in this connection's transaction: on PostgreSQL the statement's
        compiled text (nothing compiled per call), elsewhere its Core statement."""
        if self.session.dialect.name == "postgresql":
            result = await self.session.exec_driver_sql(
                statement.sql, tuple(statement.args(params))
            )
        else:
            result = await self.session.execute(statement.core, params)
        return result.all()
