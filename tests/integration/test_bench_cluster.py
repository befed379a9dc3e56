"""`python -m qrpay_tools.bench.cluster` (what `make bench-cluster` runs) in a tiny mode: a few
seconds at a low rate through both topologies; the table has its shape and nothing the
bench started is left behind (processes, ports, databases).

Skipped when nginx is not installed, unless QRPAY_REQUIRE_CLUSTER=1.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from qrpay_tools.bench.cluster import PORT_BLOCK
from qrpay_tools.cluster.run import nginx_binary
from qrpay_tools.ports import port_is_free
from tests.support.processes import child_env, free_port_base, run

pytestmark = pytest.mark.postgres

ROW = re.compile(
    r"^(single|cluster)\s+base\s+(POS|pay API|payments)\s+(\S+)\s+([\d.,]+)\s+"
    r"(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$",
    re.MULTILINE,
)


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment names ``text`` (our var dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(entry.name))
    return found


def test_bench_cluster_tiny_run_prints_the_table_and_tears_everything_down(
    tmp_path: Path, postgres_url: str
) -> None:
    if nginx_binary() is None:
        if os.environ.get("QRPAY_REQUIRE_CLUSTER") == "1":
            pytest.fail("QRPAY_REQUIRE_CLUSTER=1 but nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    var = tmp_path / "bench"
    base = free_port_base(PORT_BLOCK, low=20000, high=32000)
    prefix = f"qrpay_test_bench_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.replace("+asyncpg", "")
    command = [sys.executable, "-m", "qrpay_tools.bench.cluster", "--steps", "base"]
    command += ["--rate", "20", "--pay-rate", "1", "--seconds", "2", "--warmup", "0"]
    command += ["--orders", "20", "--payment-deadline", "8"]
    command += ["--var-dir", str(var), "--port-base", str(base), "--db-prefix", prefix]
    try:
        done = run(command, env=child_env(QRPAY_BENCH_PG=admin), timeout=150)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output

        rows = ROW.findall(done.stdout)
        assert [(phase, stream) for phase, stream, *_ in rows] == [
            (phase, stream)
            for phase in ("single", "cluster")
            for stream in ("POS", "pay API", "payments")
        ], output
        for _, stream, offered, *_ in rows:
            assert offered == {"POS": "20", "pay API": "-", "payments": "1"}[stream], output
        # Nothing refused or lost at 20 requests and 1 payment a second.
        for *_, ok_rate, _, _, _, ok, refused, errors, timeouts, _ in rows:
            assert int(ok) > 0, output
            assert float(ok_rate.replace(",", "")) > 0, output
            assert (refused, errors, timeouts) == ("0", "0", "0"), output
        assert "CPU, cores used while the load ran" in done.stdout
        assert re.search(r"^\s+cluster/base: .*nginx \d", done.stdout, re.MULTILINE), output
        assert "torn down" in done.stdout, output

        # Torn down: no process, no port, no database of the bench is left.
        assert processes_mentioning(str(var)) == [], output
        assert not list(var.glob("*/pids.json")), output
        busy = [port for port in range(base, base + PORT_BLOCK) if not port_is_free(port)]
        assert busy == [], output
        with psycopg.connect(admin, autocommit=True) as connection:
            left = [
                name
                for (name,) in connection.execute("SELECT datname FROM pg_database").fetchall()
                if str(name).startswith(prefix)
            ]
        assert left == [], output
    finally:
        for pid in processes_mentioning(str(var)):
            os.kill(pid, signal.SIGKILL)
        with psycopg.connect(admin, autocommit=True) as connection:
            for (name,) in connection.execute("SELECT datname FROM pg_database").fetchall():
                if str(name).startswith(prefix):
                    connection.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                        (name,),
                    )
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
