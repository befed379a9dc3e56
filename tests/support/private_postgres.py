"""A private, throwaway PostgreSQL server that a test may stop, restart and remove.

The machine's shared PostgreSQL must never be stopped by a test: fault tests that take the
database away start their own server with this. ``initdb`` into a temporary directory,
``pg_ctl start`` on a free TCP port (127.0.0.1) with the unix socket in that directory,
``fsync=off``. ``initdb`` refuses to run as root, so as root every command runs as the
``postgres`` user (``runuser``) in a directory handed to that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` with initdb and pg_ctl, or $PG_BIN_DIR."""
    configured = os.environ.get("PG_BIN_DIR")
    candidates = [configured] if configured else []
    candidates += sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").is_file():
        return Path(found).parent
    raise PostgresUnavailable(f"no initdb/pg_ctl in {BIN_GLOB}, $PG_BIN_DIR or PATH")


class PrivatePostgres:
    """One server: ``start()``, ``stop()``, ``restart(down_for=...)``, ``remove()``.

    ``admin_url`` (``postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres``) stays the
    same across restarts: the port is kept.
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.as_root = os.geteuid() == 0
        # Short, not under pytest's root-only tmp: the postgres user must reach it, and a
        # unix socket path has to stay under ~100 characters.
        self.root = Path(tempfile.mkdtemp(prefix="qrpay-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.as_root:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._initialized = False

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> list[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"\n--- server log\n{self.server_log()}"
            )
        return done.stdout

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# qrpay private test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 300\n"
                "shared_buffers = 32MB\n"
                "logging_collector = off\n"
            )
        self._initialized = True

    def start(self) -> None:
        """Start and wait until it accepts connections (init on the first call)."""
        if not self._initialized:
            self.init()
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` ends every session with an error, ``immediate`` is a crash."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def restart(self, *, down_for: float = 0.0, mode: str = "fast") -> tuple[float, float]:
        """Stop, stay down ``down_for`` seconds, start again.

        Returns the monotonic times when the stop began and when the server accepted
        connections again.
        """
        stopping = time.monotonic()
        self.stop(mode)
        time.sleep(max(0.0, down_for - (time.monotonic() - stopping)))
        self.start()
        return stopping, time.monotonic()

    def running(self) -> bool:
        done = subprocess.run(
            self._command("pg_ctl", "status", "-D", str(self.data)),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs (immediately: it is thrown away) and delete its files."""
        if self._initialized and self.data.exists():
            try:
                if self.running():
                    self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pid_file = self.data / "postmaster.pid"
                if pid_file.exists():
                    pid = int(pid_file.read_text().split()[0])
                    # Only our own server's postmaster, by its id.
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
