"""The cluster's processes under supervisord: its config, written from the topology, and its
XML-RPC interface (the unix socket in the var directory) for state, restarts and the stop.

supervisord restarts a program that exits: at once if it had run ``START_SECONDS``; one
that keeps dying sooner (a bad config, a missing dependency) after 1 s, 2 s, 3 s ... up to
``START_RETRIES`` tries, then it stays FATAL until an operator starts it. It rotates its log (``LOG_MAX_BYTES`` x ``LOG_BACKUPS``) and stops it with SIGTERM, then
SIGKILL after ``stopwaitsecs``: longer than what the program needs to drain (``DRAIN``).

Stdlib and supervisor only: `restart` imports this on a loaded machine.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

BIN = Path(sys.executable).parent
# A crash sooner than this after the start backs off (a bad config fails in about a
# second); later, it is restarted at once. Below the 2-3 s a service takes to be ready, so a
# program killed once it is ready is never counted as failing to start.
START_SECONDS = 2
START_RETRIES = 10
LOG_MAX_BYTES = "50MB"
LOG_BACKUPS = 5
# Seconds each kind of program takes to stop gracefully at most, from kernel and runner
# code: uvicorn's timeout_graceful_shutdown (10 s, cli/serve.py) plus the lifespan closing
# pools; the worker's shutdown_graceful_timeout (20 s, kernel/queue.py) plus closing.
# supervisord waits DRAIN + STOP_MARGIN before SIGKILL.
DRAIN = {"serve": 10, "worker": 20, "nginx": 5}
STOP_MARGIN = 10
# Stop order (supervisord stops the highest first, starts the lowest first): the worker and
# services drain before nginx stops taking requests.
PRIORITY = {"nginx": 100, "serve": 200, "worker": 300}
RUNNING = "RUNNING"
STARTED = frozenset({"STARTING", RUNNING})
# States a program stays in until someone starts it (EXITED and BACKOFF pass: it restarts).
DOWN_FOR_GOOD = frozenset({"FATAL", "STOPPED", "UNKNOWN"})
NOT_RUNNING = DOWN_FOR_GOOD | {"EXITED"}


@dataclass(frozen=True)
class Program:
    name: str
    args: list[str]
    kind: str  # serve, worker or nginx
    port: int = 0  # 0: serves no HTTP of its own (the worker)
    # Set for this program only, on top of supervisord's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    # Added to supervisord's nice level (`nice -n`): the service's, from the registry.
    nice: int = 0

    @property
    def stop_seconds(self) -> int:
        return DRAIN[self.kind] + STOP_MARGIN

    @property
    def command(self) -> list[str]:
        """What supervisord runs: the args, under `nice` when the program is niced (`nice`
        execs them: the pid supervisord watches and signals is the program's)."""
        return ["nice", "-n", str(self.nice), *self.args] if self.nice else self.args


def _escaped(value: str) -> str:
    # supervisord expands %(name)s in its config values: a literal % is %%.
    return value.replace("%", "%%")


def _environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    pairs = ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(env.items()))
    return f"environment={pairs}\n"


def config_text(var: Path, programs: Iterable[Program]) -> str:
    """supervisord.conf for ``programs``, everything of supervisord's under ``var``."""
    var = var.resolve()
    logs = var / "logs"
    sections = [
        "; Written by `python -m qrpay_tools.cluster up`; rewritten on every start.\n",
        f"[unix_http_server]\nfile={_escaped(str(socket_path(var)))}\nchmod=0700\n",
        "[supervisord]\n"
        f"logfile={_escaped(str(logs / 'supervisord.log'))}\n"
        f"logfile_maxbytes={LOG_MAX_BYTES}\n"
        f"logfile_backups={LOG_BACKUPS}\n"
        f"pidfile={_escaped(str(pid_path(var)))}\n"
        f"directory={_escaped(str(var))}\n"
        "loglevel=info\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{_escaped(str(socket_path(var)))}\n",
    ]
    for program in programs:
        log = _escaped(str(logs / f"{program.name}.log"))
        sections.append(
            f"[program:{program.name}]\n"
            f"command={_escaped(shlex.join(program.command))}\n"
            + _environment(program.env)
            + f"priority={PRIORITY[program.kind]}\n"
            "autostart=true\n"
            # Also after a clean exit: a service that stopped by itself is still down.
            "autorestart=true\n"
            f"startsecs={START_SECONDS}\n"
            f"startretries={START_RETRIES}\n"
            f"stopsignal={'QUIT' if program.kind == 'nginx' else 'TERM'}\n"
            f"stopwaitsecs={program.stop_seconds}\n"
            "stopasgroup=true\n"
            "killasgroup=true\n"
            "redirect_stderr=true\n"
            f"stdout_logfile={log}\n"
            f"stdout_logfile_maxbytes={LOG_MAX_BYTES}\n"
            f"stdout_logfile_backups={LOG_BACKUPS}\n"
        )
    return "\n".join(sections)


def config_path(var: Path) -> Path:
    return var / "supervisord.conf"


def socket_path(var: Path) -> Path:
    return var / "supervisor.sock"


def pid_path(var: Path) -> Path:
    return var / "supervisord.pid"


def supervisord_args(var: Path) -> list[str]:
    return [str(BIN / "supervisord"), "-c", str(config_path(var).resolve())]


def supervisorctl_args(var: Path, *args: str) -> list[str]:
    return [str(BIN / "supervisorctl"), "-c", str(config_path(var).resolve()), *args]


def supervisord_pid(var: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(pid_path(var).read_text().strip())
    return None


class Supervisor:
    """supervisord's XML-RPC interface over the var directory's unix socket."""

    def __init__(self, var: Path) -> None:
        transport = SupervisorTransport(None, None, f"unix://{socket_path(var).resolve()}")
        # The URL's host is not used: the transport talks to the socket.
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        self._rpc: Any = self._proxy.supervisor

    def answering(self) -> bool:
        try:
            return str(self._rpc.getState()["statename"]) == RUNNING
        except (OSError, xmlrpc.client.Error):
            return False

    def processes(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._rpc.getAllProcessInfo())

    def info(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._rpc.getProcessInfo(name))

    def start(self, name: str) -> None:
        """Start ``name`` and return once it is RUNNING (alive START_SECONDS)."""
        try:
            self._rpc.startProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def stop(self, name: str, *, wait: bool = True) -> None:
        try:
            self._rpc.stopProcess(name, wait)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def kill(self, name: str) -> None:
        with contextlib.suppress(xmlrpc.client.Fault):  # gone meanwhile
            self._rpc.signalProcess(name, "KILL")

    def shutdown(self) -> None:
        self._rpc.shutdown()


def wait_stopped(supervisor: Supervisor, names: list[str], timeout: float) -> list[str]:
    """Wait until none of ``names`` runs; returns those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        running = [
            str(p["name"])
            for p in supervisor.processes()
            if p["name"] in names and p["statename"] not in NOT_RUNNING
        ]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def killed_in_log(path: Path, offset: int) -> list[str]:
    """Programs supervisord's log says it SIGKILLed after byte ``offset`` (the stop timed out)."""
    if not path.exists():
        return []
    text = path.read_bytes()[offset:].decode(errors="replace")
    return [
        line.split("'")[1] for line in text.splitlines() if "with SIGKILL" in line and "'" in line
    ]
