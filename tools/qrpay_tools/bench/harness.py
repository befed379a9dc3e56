"""The load generator (wrk), the bare FastAPI baseline and the CPU accounting of the benchmarks."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from qrpay_tools.local import (
    Process,
    fresh_database,
    migrate,
    require_program,
    serve,
    start,
    wait_ready,
    write_config,
)
from qrpay_tools.ports import free_port


@dataclass
class WrkResult:
    """What wrk printed; a figure it did not print is NaN (reported, never a crash)."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors
    socket_errors: int = 0  # of ``errors``: connect, read, write and timeout


# wrk's units.c: microseconds, milliseconds, seconds, then minutes and hours.
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def _ms(text: str) -> float:
    """``4.05ms`` -> 4.05; NaN for what is not one of wrk's durations."""
    found = re.fullmatch(_DURATION, text.strip())
    return float(found[1]) * UNIT_MS[found[2]] if found else math.nan


def _percentile_ms(output: str, percent: int) -> float:
    # Anchored to a line of the "Latency Distribution" block: "50%" also ends figures such
    # as "84.50%" in the "+/- Stdev" column of the thread stats above it.
    found = re.search(rf"^\s*{percent}(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE)
    return _ms(found[1]) if found else math.nan


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx[1])
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket = sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    errors += socket
    return WrkResult(
        rps=float(rps[1]) if rps else math.nan,
        p50_ms=_percentile_ms(output, 50),
        p99_ms=_percentile_ms(output, 99),
        requests=int(requests[1]) if requests else 0,
        errors=errors,
        socket_errors=socket,
    )


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
            require_program("wrk"),
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
    return parse_wrk(output)


@contextlib.contextmanager
def baseline(workers: int, log_dir: Path) -> Iterator[Process]:
    """A bare FastAPI JSON endpoint served like the services (uvicorn, uvloop, httptools)."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "qrpay_tools.bench.baseline_app:app"]
    args += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    args += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    process = start("baseline", args, port, {}, log_dir)
    try:
        wait_ready(process)
        yield process
    finally:
        process.stop()


@dataclass(frozen=True)
class PosStand:
    """eda and iiko-integration's config on free ports in a work folder (with ``var/``), eda's
    database a fresh one, migrated."""

    workdir: Path
    database_url: str
    ports: dict[str, int]
    env: dict[str, str]

    def serve(self, service: str, workers: int) -> Process:
        return serve(service, self.ports[service], workers, self.env, self.workdir)


@contextlib.contextmanager
def pos_stand(name: str) -> Iterator[PosStand]:
    """A ``PosStand`` whose database and work folder are named after ``name``, both gone after."""
    with (
        tempfile.TemporaryDirectory(prefix=f"{name.replace('_', '-')}-") as tmp,
        fresh_database(name) as url,
    ):
        workdir = Path(tmp)
        (workdir / "var").mkdir()
        ports = {"eda": free_port(), "iiko-integration": free_port()}
        env = write_config(workdir, ports, {"eda": url})
        migrate(env, "eda")
        yield PosStand(workdir, url, ports, env)


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a server started with ``--workers`` (uvicorn spawns each with
    multiprocessing), or the server itself when it has none."""
    workers = []
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    workers.append(int(child))
    return workers or [pid]


def rss_mib(pid: int) -> float:
    """A process's resident set (VmRSS) in MiB; NaN once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


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


# The server's own processes that a write load keeps busy, whichever database it writes.
_POSTGRES_SERVER_WORKERS = frozenset({"walwriter", "checkpointer", "background writer"})


def postgres_cpu_by_process(databases: Collection[str]) -> dict[int, float]:
    """CPU time of each PostgreSQL backend serving one of ``databases`` (by its process
    title, ``postgres: <cluster>: <user> <database> <client> <state>``) and of the server's
    WAL writer, checkpointer and background writer.

    Other databases' backends (other tests, other tools on a shared box) are left out, so
    the figure is the benchmark's own; compare two samples with ``cpu_spent``.
    """
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = Path(entry, "cmdline").read_bytes().replace(b"\0", b" ")
            if serves(title.decode(errors="replace"), databases):
                found[int(entry.name)] = _own_cpu_seconds(int(entry.name))
    return found


def serves(title: str, databases: Collection[str]) -> bool:
    """Whether a process titled ``title`` is a PostgreSQL backend of one of ``databases`` or
    one of the server's WAL writer, checkpointer and background writer."""
    if not title.startswith("postgres: "):
        return False
    activity = title.split(": ", 2)[-1].strip()
    words = activity.split()
    return activity in _POSTGRES_SERVER_WORKERS or (len(words) > 1 and words[1] in databases)


def cpu_spent(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two samples by the processes of the second (new ones whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
