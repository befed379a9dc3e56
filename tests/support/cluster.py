"""`python -m qrpay_tools.cluster` (nginx, PostgreSQL, `qrpay serve` + `qrpay worker`) in a test.

``cluster_layout`` gives a ``Layout`` in the test's tmp directory on free ports with its own
database prefix, and the options that point `up`, `down` and `restart` at it; on exit it
runs `down` and drops the databases. A missing nginx skips the test, or fails it when
QRPAY_REQUIRE_CLUSTER=1 (CI installs nginx).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from qrpay_tools import local
from qrpay_tools.cluster.run import Layout, nginx_binary
from tests.support.processes import child_env, free_port_base, run


def cluster_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "qrpay_tools.cluster", *args]


def require_nginx() -> None:
    if nginx_binary() is None:
        if os.environ.get("QRPAY_REQUIRE_CLUSTER") == "1":
            pytest.fail("QRPAY_REQUIRE_CLUSTER=1 but nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install -y nginx; `make cluster` does it)")


def drop_databases(prefix: str) -> None:
    with psycopg.connect(local.PG_ADMIN, autocommit=True) as admin:
        names = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in names:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def cluster_layout(tmp_path: Path, tag: str = "cluster") -> Iterator[tuple[Layout, list[str]]]:
    """(layout, options for `python -m qrpay_tools.cluster ...`); the cluster is not started."""
    require_nginx()
    prefix = f"qrpay_test_{tag}_{uuid.uuid4().hex[:8]}"
    # Below the ephemeral ports, so outgoing connections cannot take ours.
    layout = Layout(tmp_path / "cluster", free_port_base(40, low=20000, high=32000))
    options = ["--var-dir", str(layout.var), "--port-base", str(layout.port_base)]
    options += ["--db-prefix", prefix]
    try:
        yield layout, options
    finally:
        run(cluster_command("down", *options), env=child_env(), timeout=120)
        drop_databases(prefix)
