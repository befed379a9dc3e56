"""Process, database and load-generator plumbing shared by the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import yaml

from qrpay.kernel.config import DEFAULT_PORTS
from qrpay.kernel.settings import REPO_DEV_CONFIG

PG_ADMIN = os.environ.get("QRPAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
QRPAY = str(Path(sys.executable).parent / "qrpay")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database; yields its asyncpg URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host_part}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def drop_databases(prefix: str) -> list[str]:
    """Drop every database named ``<prefix>_...``; returns their names."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        names = [
            str(name)
            for (name,) in admin.execute("SELECT datname FROM pg_database").fetchall()
            if str(name).startswith(prefix + "_")
        ]
        for name in names:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    return names


def write_config(workdir: Path, ports: dict[str, int], databases: dict[str, str]) -> dict[str, str]:
    """Config and secdist for a benchmark run; returns the environment that points at them."""
    config = yaml.safe_load((REPO_DEV_CONFIG / "config.yaml").read_text())
    secdist = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())
    for name in DEFAULT_PORTS:
        port = ports.get(name, DEFAULT_PORTS[name])
        config["services"].setdefault(name, {})["base_url"] = f"http://127.0.0.1:{port}"
    config["services"]["eda"].update(timeout_ms=2000, retries=1)
    config["orders"]["create_deadline_ms"] = 3000
    # Present, so that a dotted override (`qrpay_tools.cluster up --set http.max_in_flight=64`)
    # finds the section; empty means the defaults.
    config.setdefault("http", {})
    secdist["databases"] = databases
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    (workdir / "secdist.yaml").write_text(yaml.safe_dump(secdist))
    return {
        "QRPAY_CONFIG": str(workdir / "config.yaml"),
        "QRPAY_SECDIST": str(workdir / "secdist.yaml"),
        "QRPAY_DATA_DIR": str(workdir / "var"),
        "QRPAY_LOG_LEVEL": "WARNING",
    }


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(name: str, args: list[str], port: int, env: dict[str, str], log_dir: Path) -> Process:
    log = (log_dir / f"{name}.log").open("wb")
    popen = subprocess.Popen(
        args,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Process(name, popen, port)


def serve(service: str, port: int, workers: int, env: dict[str, str], log_dir: Path) -> Process:
    return start(
        service,
        [
            QRPAY,
            "serve",
            service,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        port,
        env,
        log_dir,
    )


async def wait_ready(process: Process, path: str = "/ping", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"http://127.0.0.1:{process.port}{path}") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{process.name} did not become ready on port {process.port}")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package) for the load generator ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    assert found, "wrk is not available"
    return found


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str,
    script: Path,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    env: dict[str, str] | None = None,
) -> WrkResult:
    output = subprocess.run(
        [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return WrkResult(rps, p50, p99, requests, errors)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children still running (workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    for one in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process (they serve all the benchmark's databases)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(entry, "comm").read_text().strip() in {"postgres", "postmaster"}:
                total += cpu_seconds(int(entry.name))
    return total
