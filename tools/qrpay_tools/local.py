"""A qrpay on this machine: its programs, PostgreSQL databases, config files and processes.

What the benchmarks (qrpay_tools.bench) and the local cluster (qrpay_tools.cluster) both
need; neither imports the other. `python -m qrpay_tools.cluster restart` imports this on a
loaded machine, so importing it loads the standard library and yaml only: psycopg and the
product's config are imported by the functions that use them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from qrpay_tools.errors import error_line

PG_ADMIN = os.environ.get("QRPAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
QRPAY = str(Path(sys.executable).parent / "qrpay")

# -- system programs ----------------------------------------------------------------------

# Installed by `make apt-<name>` (Debian's package of that name), never by the tools.
SBIN = ("/usr/sbin", "/sbin")


def program(name: str) -> str | None:
    """The path of an installed program (also in sbin, which a user's PATH may lack)."""
    return shutil.which(name) or next(
        (str(Path(d, name)) for d in SBIN if Path(d, name).exists()), None
    )


def require_program(name: str) -> str:
    """The program's path; exits with one line saying how to install it when it is missing."""
    found = program(name)
    if found is None:
        raise SystemExit(
            error_line(
                f"{name} is not installed: run `make apt-{name}` "
                f"(Debian: apt-get install -y {name})"
            )
        )
    return found


# -- databases ----------------------------------------------------------------------------


def database_url(name: str) -> str:
    """The asyncpg URL of database ``name`` on the server of ``PG_ADMIN``."""
    host_part = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{host_part}/{name}"


def ensure_database(name: str) -> str:
    """Creates database ``name`` unless it exists; returns its asyncpg URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database; yields its asyncpg URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = ensure_database(name)
    try:
        yield url
    finally:
        drop_databases(name, exact=True)


def drop_databases(prefix: str, *, exact: bool = False) -> list[str]:
    """Drop every database named ``<prefix>_...`` (``exact``: named ``prefix``); their names."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        names = [
            str(name)
            for (name,) in admin.execute("SELECT datname FROM pg_database").fetchall()
            if (str(name) == prefix if exact else str(name).startswith(prefix + "_"))
        ]
        for name in names:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    return names


# -- config -------------------------------------------------------------------------------


def write_config(workdir: Path, ports: dict[str, int], databases: dict[str, str]) -> dict[str, str]:
    """Config and secdist for a local run; returns the environment that points at them."""
    from qrpay.kernel.settings import REPO_DEV_CONFIG
    from qrpay.runner.registry import DEFAULT_PORTS

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
        # The public development secrets: a production start would refuse them.
        "QRPAY_ENVIRONMENT": "development",
        "QRPAY_CONFIG": str(workdir / "config.yaml"),
        "QRPAY_SECDIST": str(workdir / "secdist.yaml"),
        "QRPAY_DATA_DIR": str(workdir / "var"),
        "QRPAY_LOG_LEVEL": "WARNING",
    }


def run_checked(args: list[str], env: dict[str, str], failed: str) -> None:
    """``args`` with ``env`` on top of ours; RuntimeError ``failed`` and its output if it fails."""
    done = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{failed}:\n{done.stdout}{done.stderr}".strip())


def migrate(env: dict[str, str], *services: str) -> None:
    """`qrpay db upgrade [services]` with ``env``; RuntimeError with its output if it fails."""
    run_checked([QRPAY, "db", "upgrade", *services], env, "`qrpay db upgrade` failed")


# -- processes ----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int  # 0: serves no HTTP (a queue worker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(
    name: str,
    args: list[str],
    port: int,
    env: dict[str, str],
    log_dir: Path,
    *,
    append: bool = False,
) -> Process:
    """Starts ``args`` detached (its own session), output to ``<log_dir>/<name>.log``."""
    with (log_dir / f"{name}.log").open("ab" if append else "wb") as log:
        popen = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, port)


def serve_args(service: str, port: int, workers: int = 1) -> list[str]:
    args = [QRPAY, "serve", service, "--host", "127.0.0.1", "--port", str(port)]
    return args + (["--workers", str(workers)] if workers != 1 else [])


def worker_args(concurrency: int) -> list[str]:
    return [QRPAY, "worker", "payments-eda", "--concurrency", str(concurrency)]


def serve(service: str, port: int, workers: int, env: dict[str, str], log_dir: Path) -> Process:
    return start(service, serve_args(service, port, workers), port, env, log_dir)


def wait_ready(
    process: Process | None, url: str = "", *, path: str = "/ping", timeout: float = 60
) -> None:
    """Wait until ``url`` (or the process's ``path``) answers 200; RuntimeError if the process
    exits first or the time runs out. Plain urllib: no proxy from the environment."""
    target = url or f"{process.url if process else ''}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.popen.returncode} before {target} answered"
            )
        # Refused, reset, timed out or an HTTP error (all OSError): not ready yet.
        with contextlib.suppress(OSError), opener.open(target, timeout=5) as answer:
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            who = f" ({process.name})" if process else ""
            raise RuntimeError(f"{target}{who} did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)
