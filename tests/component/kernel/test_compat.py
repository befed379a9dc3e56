"""kernel/compat.py still matches the installed libraries: an upgrade that changes what it relies
on fails here, by name, instead of in a fault test (or in production) much later."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import inspect
import socket
import tomllib
from pathlib import Path
from typing import Any

import asyncpg
import psycopg_pool
import pytest
from packaging.requirements import Requirement

from qrpay.kernel import compat
from qrpay.kernel import queue as queue_module
from qrpay.kernel.queue import TaskQueue, queue_pool

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
BOUNDED = ("procrastinate", "psycopg", "psycopg-pool", "asyncpg")


def fingerprint(name: str) -> str:
    return hashlib.sha256(inspect.getsource(compat.SOURCES[name]).encode()).hexdigest()[:16]


def test_the_installed_versions_are_within_the_pinned_bounds() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    requirements = {Requirement(line).name: Requirement(line) for line in dependencies}
    for name in BOUNDED:
        requirement = requirements[name]
        assert any(spec.operator == "<" for spec in requirement.specifier), (
            f"{name} has no upper bound in pyproject.toml"
        )
        installed = importlib.metadata.version(name)
        assert requirement.specifier.contains(installed), f"{name} {installed} not in {requirement}"


@pytest.mark.parametrize("name", sorted({**compat.OVERRIDDEN, **compat.RELIED_ON}))
def test_the_upstream_code_compat_relies_on_is_unchanged(name: str) -> None:
    recorded = {**compat.OVERRIDDEN, **compat.RELIED_ON}[name]
    assert fingerprint(name) == recorded, (
        f"procrastinate's {name} changed (now {fingerprint(name)}): read it, adapt "
        "qrpay.kernel.compat.ResilientJobManager and record the new fingerprint"
    )


@pytest.mark.parametrize("name", sorted(compat.OVERRIDDEN))
def test_each_override_keeps_the_upstream_signature(name: str) -> None:
    method = name.split(".")[1]
    ours = inspect.signature(getattr(compat.ResilientJobManager, method))
    upstream = inspect.signature(compat.SOURCES[name])
    if any(p.kind is p.VAR_KEYWORD for p in ours.parameters.values()):
        return  # listen_for_jobs passes its keywords through as they are
    assert list(ours.parameters) == list(upstream.parameters)


def test_every_overridden_method_is_recorded() -> None:
    overridden = {
        f"JobManager.{name}"
        for name, value in vars(compat.ResilientJobManager).items()
        if callable(value) and not name.startswith("_")
    }
    assert overridden == set(compat.OVERRIDDEN)


@pytest.mark.parametrize(("kind", "text"), compat.ASYNCPG_CONNECTION_LOST)
def test_asyncpg_still_raises_the_messages_compat_reads(kind: type[Exception], text: str) -> None:
    package = Path(asyncpg.__file__).parent
    sources = [package / "connection.py", *sorted((package / "protocol").glob("*.pyx"))]
    assert any(text in source.read_text() for source in sources), f"asyncpg no longer says {text!r}"
    assert compat.asyncpg_connection_lost(kind(f"cannot call it: {text}"))
    assert not compat.asyncpg_connection_lost(kind("something else"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_queue_pool_keeps_reconnecting_after_giving_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg_pool gives a connection up after ``reconnect_timeout``; the pool tries again."""
    gave_up = 0
    again = asyncio.Event()
    keep_reconnecting = queue_module._keep_reconnecting

    async def counting(pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        nonlocal gave_up
        gave_up += 1
        # Beyond the first connections it opened with: it went on trying after giving up.
        if gave_up >= pool.min_size + 2:
            again.set()
        await keep_reconnecting(pool)

    monkeypatch.setattr(queue_module, "_keep_reconnecting", counting)
    pool = queue_pool(f"postgresql://qrpay@127.0.0.1:{closed_port()}/none")
    assert pool.reconnect_timeout <= queue_module.RECONNECT_MAX_DELAY
    await pool.open(wait=False)
    try:
        await asyncio.wait_for(again.wait(), timeout=30)
        assert not pool.closed
    finally:
        await pool.close()


async def test_a_queue_opens_while_its_database_is_down() -> None:
    queue = TaskQueue(f"postgresql+asyncpg://qrpay@127.0.0.1:{closed_port()}/none")
    await queue.open()  # procrastinate's own pool would wait to fill, then close for good
    try:
        assert isinstance(queue.app.job_manager, compat.ResilientJobManager)
        assert queue.app.connector.pool is queue._pool  # type: ignore[attr-defined]
        assert not queue.app.connector.pool.closed  # type: ignore[attr-defined]
    finally:
        await queue.close()
