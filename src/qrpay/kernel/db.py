"""Async SQLAlchemy: SQLite in the embedded mode, PostgreSQL in production.

``Database.write()`` is the unit of work: a connection in a transaction that
commits when the block ends normally and rolls back when it raises.
``Database.read()`` is a connection for single-statement reads (autocommit on
PostgreSQL, so no BEGIN/ROLLBACK round trips). Repositories use SQLAlchemy
Core: the ORM session cost more than the query on the hot paths (measured). A hot query is
a ``Statement``: declared once in Core, run on PostgreSQL from its asyncpg text compiled once
(``Database.fetch``, ``fetch_fast``) and on SQLite through SQLAlchemy. On SQLite a
write transaction starts with ``BEGIN IMMEDIATE`` so two writers queue on the
file lock instead of failing when a reader tries to upgrade.

A database that is down or restarting is ``DependencyUnavailable``
(``database_unavailable``, HTTP 503) wherever it shows: ``write()``, ``read()``,
``fetch_fast()`` and ``ping()`` turn connection-level failures (refused, reset,
closed by a server shutdown, "the database system is starting up", pool
exhausted) into it, so a request fails cleanly instead of with a 500. Nothing
is checked per request ahead of time (no pre-ping round trip): a pooled
connection that the server has closed is known to be closed locally and is
replaced at checkout, and the one query that meets a connection dying under it
invalidates the pool, which then reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

import asyncpg
import structlog
from sqlalchemy import Column, DateTime, MetaData, String, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from qrpay.kernel.compat import asyncpg_connection_lost
from qrpay.kernel.errors import DependencyUnavailable, QrpayError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


# The column shapes the services' tables share.


def amount_column(name: str = "amount") -> Column[str]:
    """A money amount as its canonical decimal string (``kernel.money``), never a float:
    SQLite has no exact decimal type, and the wire format is a string anyway."""
    return Column(name, String(32), nullable=False)


def currency_column(*, primary_key: bool = False) -> Column[str]:
    """The ISO 4217 code of the row's amounts."""
    return Column("currency", String(3), nullable=False, primary_key=primary_key)


def time_column(name: str, *, nullable: bool = False) -> Column[datetime]:
    """A moment with its time zone (SQLite drops it; ``record_of`` and ``utc`` read UTC)."""
    return Column(name, DateTime(timezone=True), nullable=nullable)


def created_updated() -> tuple[Column[datetime], Column[datetime]]:
    """When the row was written first and last."""
    return time_column("created_at"), time_column("updated_at")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sync_url(url: str) -> str:
    """The URL of the same database for a synchronous driver (migrations)."""
    return url.replace("sqlite+aiosqlite", "sqlite").replace(
        "postgresql+asyncpg", "postgresql+psycopg"
    )


def libpq_url(url: str) -> str:
    """The URL of the same PostgreSQL database for libpq-style drivers (asyncpg, psycopg)."""
    return url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgresql+psycopg://", "postgresql://"
    )


# The dialect ``Statement`` compiles for: the asyncpg engine's, so the text is what it runs.
_ASYNCPG = PGDialect_asyncpg()
# A parameter the caller gives, as opposed to a value written into the statement.
_GIVEN = object()


class Statement:
    """One query, declared once as a SQLAlchemy Core statement with named bind parameters.

    Compiled here, once, for asyncpg: ``sql`` is its ``$1``... text and ``args`` puts the
    named parameters in that order (after the dialect's own conversions, e.g. JSON to
    text); ``Database.fetch`` runs it so on PostgreSQL with nothing built per call. SQLite
    runs ``core`` itself through SQLAlchemy. Either way a row is the select's columns by
    position.
    """

    __slots__ = ("_slots", "core", "sql")

    def __init__(self, core: Executable) -> None:
        compiled = cast(SQLCompiler, cast(ClauseElement, core).compile(dialect=_ASYNCPG))
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            bind = binds[name]
            process = bind.type.dialect_impl(_ASYNCPG).bind_processor(_ASYNCPG)
            if bind.required:
                slots.append((name, _GIVEN, process))
            else:  # a value written in the statement (a literal): converted once, here
                value = bind.effective_value
                slots.append((name, value if process is None else process(value), None))
        self.core = core
        self.sql: str = compiled.string
        self._slots = tuple(slots)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The asyncpg arguments of ``sql`` for the named ``params``."""
        args = []
        for name, value, process in self._slots:
            if value is _GIVEN:
                value = params[name]
                if process is not None and value is not None:
                    value = process(value)
            args.append(value)
        return args


async def _no_reset(_connection: Any) -> None:
    return None


log = structlog.get_logger("qrpay.db")

# asyncpg's errors that mean "no usable connection" rather than "this statement is wrong":
# class 08 (connection exceptions, incl. a connection that no longer exists), class 57
# (operator intervention: admin/crash shutdown, cannot connect now, query canceled) and
# class 53 (insufficient resources: too many connections, out of memory or disk).
_UNAVAILABLE_ASYNCPG = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached or used now."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
            return True  # the pool had no connection to give in time, or a dead one
        if isinstance(current, (OSError, *_UNAVAILABLE_ASYNCPG)):
            return True  # refused, reset, timed out (TimeoutError is an OSError)
        if asyncpg_connection_lost(current):
            return True  # closed, or "another operation is in progress": the server ended it
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return False


def unavailable(exc: BaseException) -> DependencyUnavailable:
    return DependencyUnavailable(
        f"the database is unavailable: {type(exc).__name__}", code="database_unavailable"
    )


def _is_closed(dbapi_connection: Any) -> bool:
    """Whether the driver already knows this connection is closed (no round trip)."""
    is_closed = getattr(getattr(dbapi_connection, "driver_connection", None), "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL is a property of the file, kept across connections and restarts. Switching
        # to it takes the file's exclusive lock, and asked on every connect while another
        # connection wrote, it failed with "database is locked" (a CI run): so only when
        # the file is not in WAL yet.
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# What a connection that is broken, or being closed by the server, fails a statement with.
_BROKEN_CONNECTION = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
)


async def _fetch(pool: asyncpg.Pool, sql: str, args: tuple[Any, ...]) -> list[Any]:
    async with pool.acquire() as connection:
        try:
            rows: list[Any] = await connection.fetch(sql, *args)
        except _BROKEN_CONNECTION as exc:
            if is_unavailable(exc):
                # Its protocol may be mid-way (the server's goodbye came in while it was idle):
                # no reset runs on release here, so it must not go back to the pool as it is.
                connection.terminate()
            raise
        return rows


def _replace_closed_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # The server closed it (a restart ends every session): the pool discards it and checks
    # out another, or opens a new one, instead of letting one request fail on it.
    if _is_closed(dbapi_connection):
        raise sa_exc.DisconnectionError("the pooled connection was closed by the server")


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False) -> None:
        self.url = url
        self._pool_size = pool_size
        self._fast_pool: asyncpg.Pool | None = None
        self._fast_pool_lock = asyncio.Lock()
        if is_sqlite(url):
            self.engine = _sqlite_engine(url, immediate=True)
            self._read_engine = _sqlite_engine(url, immediate=False)
        else:
            # No pre-ping: it doubles the cost of every checkout (measured 2.3 ms vs 1.2 ms a
            # read). A connection the server closed (a restart) is known closed locally and
            # replaced at checkout; one that dies under a query fails that query (503) and
            # invalidates the pool, so the others are replaced too.
            # No overflow: connections opened and closed under a burst cost more than
            # waiting for a pooled one (measured: a 16-request burst on a pool of 10 with
            # overflow ran at a third of the speed).
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=10,
                pool_recycle=1800,
                echo=echo,
            )
            event.listen(self.engine.sync_engine.pool, "checkout", _replace_closed_on_checkout)
            # Reads are single statements: autocommit skips the BEGIN/ROLLBACK round trips.
            self._read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def has_fast_reads(self) -> bool:
        return not is_sqlite(self.url)

    async def fetch_fast(self, sql: str, *args: Any) -> list[Any]:
        """Run one read-only statement straight on asyncpg (PostgreSQL only).

        For the hottest reads: measured with 16 concurrent callers, one indexed
        SELECT took 0.66 ms of CPU through SQLAlchemy Core (1.0 ms building the
        statement each time) and 0.15 ms on an asyncpg pool whose connections
        are not reset on release (nothing but single autocommit SELECTs runs
        on them, so there is no session state to reset). asyncpg's pool itself
        replaces a connection that is closed when it is acquired.

        A connection that died under the statement (a server restart) is retried once on a
        fresh one: the statement is a read. Any other failure to reach the database is
        ``database_unavailable``.
        """
        async with _unavailable_as_error():
            pool = self._fast_pool or await self._open_fast_pool()
            try:
                return await _fetch(pool, sql, args)
            except _BROKEN_CONNECTION as exc:
                if not is_unavailable(exc):
                    raise
                log.info("fast_read_retried", reason=type(exc).__name__)
                return await _fetch(pool, sql, args)

    async def fetch(self, statement: Statement, **params: Any) -> Sequence[Sequence[Any]]:
        """The rows of ``statement`` for ``params``: on PostgreSQL its compiled text through
        ``fetch_fast``, elsewhere the Core statement on a ``read()`` connection."""
        if self.has_fast_reads:
            return await self.fetch_fast(statement.sql, *statement.args(params))
        async with self.read() as connection:
            return (await connection.execute(statement.core, params)).all()

    async def _open_fast_pool(self) -> asyncpg.Pool:
        async with self._fast_pool_lock:
            if self._fast_pool is None:
                # min_size=0: a pool opened while the database is down fails at once instead
                # of being left half-made; connections are opened as reads need them.
                self._fast_pool = await asyncpg.create_pool(
                    libpq_url(self.url),
                    min_size=0,
                    max_size=self._pool_size,
                    reset=_no_reset,
                    max_inactive_connection_lifetime=300,
                )
            return self._fast_pool

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; connection-level failures anywhere in it are ``database_unavailable``."""
        async with _unavailable_as_error(), self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """For one write statement, atomic by itself: on PostgreSQL in autocommit, without
        the BEGIN and COMMIT round trips of ``write`` (measured: BEGIN alone was 14% of
        transactions' CPU under ``make bench-pay``). SQLite writes take its write lock."""
        if is_sqlite(self.url):
            async with self.write() as connection:
                yield connection
            return
        async with _unavailable_as_error(), self._read_engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with _unavailable_as_error(), self._read_engine.connect() as connection:
            yield connection

    async def ping(self, *, timeout: float = 2.0) -> None:
        """``SELECT 1``; any failure (refused, timed out, broken) is ``database_unavailable``.

        Readiness calls it, so a dead database answers 503 instead of an unexpected 500,
        and within ``timeout`` even when the database's host does not answer at all.
        """
        from sqlalchemy import text

        try:
            async with asyncio.timeout(timeout), self._read_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise DependencyUnavailable(
                f"the database is unreachable: {type(exc).__name__}", code="database_unavailable"
            ) from exc

    async def dispose(self) -> None:
        if self._fast_pool is not None:
            await self._fast_pool.close()
            self._fast_pool = None
        await self.engine.dispose()
        if self._read_engine.sync_engine.pool is not self.engine.sync_engine.pool:
            await self._read_engine.dispose()


@asynccontextmanager
async def _unavailable_as_error() -> AsyncIterator[None]:
    """A lost or refused connection inside the block becomes ``database_unavailable``."""
    try:
        yield
    except QrpayError:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise unavailable(exc) from exc
        raise
