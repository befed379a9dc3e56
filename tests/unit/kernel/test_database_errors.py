"""Which failures count as "the database is unavailable" (a 503), for SQLAlchemy, asyncpg and
the queue's psycopg."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest
from procrastinate import exceptions as pexc
from sqlalchemy import exc as sa_exc

from qrpay.kernel.db import is_unavailable
from qrpay.kernel.queue import is_transient


def caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        sa_exc.TimeoutError("QueuePool limit of size 20 overflow 0 reached"),
        sa_exc.DisconnectionError("closed by the server"),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        sa_exc.DBAPIError("SELECT 1", {}, ConnectionResetError()),
        caused_by(RuntimeError("wrapped"), ConnectionRefusedError()),
    ],
    ids=type,
)
def test_connection_failures_are_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        ValueError("bad input"),
    ],
    ids=type,
)
def test_statement_errors_are_not_unavailable(exc: BaseException) -> None:
    assert not is_unavailable(exc)


def test_a_cause_cycle_does_not_loop() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert not is_unavailable(first)


def test_queue_transient_errors() -> None:
    down = caused_by(pexc.ConnectorException(), psycopg.OperationalError("connection refused"))
    assert is_transient(down)
    not_found = caused_by(pexc.ConnectorException(), psycopg.errors.RaiseException("not found"))
    assert not is_transient(not_found)
    assert not is_transient(pexc.UniqueViolation(constraint_name="x", queueing_lock="y"))
