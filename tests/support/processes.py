"""Real processes for the e2e and integration tiers: free ports, start, wait, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from qrpay_tools.ports import free_port_block

VENV_BIN = Path(sys.executable).parent
QRPAY = str(VENV_BIN / "qrpay")
QRPAY_TOOLS = str(VENV_BIN / "qrpay-tools")


def free_port_base(count: int, *, attempts: int = 20, low: int = 20000, high: int = 60000) -> int:
    """A base port with ``count`` consecutive free ports after it (probing random bases)."""
    return free_port_block(count, low=low, high=high, tries=attempts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QRPAY_", "PROMETHEUS_"))}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="120")
    env.update(extra)
    return env


def start(
    args: Sequence[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process with stdout and stderr in ``log`` (read it when something fails)."""
    handle = log.open("ab")
    try:
        return subprocess.Popen(
            list(args),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env or child_env(),
            cwd=cwd,
            # Its own group: a test's SIGINT reaches it alone, as a Ctrl-C would.
            start_new_session=True,
        )
    finally:
        handle.close()


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env or child_env(),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def wait_for_http(
    urls: Iterable[str],
    *,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Wait until every URL answers 200; fail early, with the log, if the process died."""
    pending = list(urls)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, verify=verify) as client:
        while pending:
            if process is not None and process.poll() is not None:
                raise AssertionError(
                    f"process exited with {process.returncode} before {pending[0]} answered"
                    + (f":\n{log.read_text(errors='replace')}" if log else "")
                )
            try:
                if client.get(pending[0]).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pending[0]} did not answer within {timeout}s"
                    + (f":\n{log.read_text(errors='replace')}" if log else "")
                )
            time.sleep(0.1)


def wait_for_text(log: Path, text: str, *, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} did not appear in {log} within {timeout}s:\n{content}")
        time.sleep(0.05)


def terminate(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> int:
    """Send ``sig``, wait up to ``timeout``, then kill; return the exit code (or -9 if killed)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Clean-up after a failed test: the process and any workers it forked."""
    # The group, even when the leader is gone: uvicorn's workers may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait()


def link_of(output: str) -> str:
    """The one deep link pos-sim printed (its ``Link: ...`` line)."""
    lines = [line for line in output.splitlines() if line.startswith("Link: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("Link: ")


def order_id_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["order_id"][0]


class QrpayUp:
    """`qrpay up` in its own data directory on free ports, optionally with config overrides.

    ``config`` entries replace top-level sections of the dev config (merged one level
    deep) before the first start; `qrpay up` keeps the file and only moves its URLs.
    """

    def __init__(self, data_dir: Path, log: Path, *, config: dict[str, Any] | None = None) -> None:
        from qrpay.runner.embedded import ports_for

        self.data_dir = data_dir
        self.log = log
        self.base = free_port_base(len(ports_for(8080)))
        self.ports = ports_for(self.base)
        self.process: subprocess.Popen[bytes] | None = None
        if config:
            self._write_config(config)

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path, services: Iterable[str] = (), **options: Any) -> Iterator[QrpayUp]:
        """`qrpay up` with its data and log under ``root``, started for ``services`` (none:
        not started), killed at the end whatever the test did."""
        instance = cls(root / "var", root / "up.log", **options)
        try:
            if services:
                instance.start(services)
            yield instance
        finally:
            instance.kill()

    def _write_config(self, overrides: dict[str, Any]) -> None:
        import yaml

        from qrpay.kernel.config import load_yaml
        from qrpay.kernel.settings import REPO_DEV_CONFIG
        from qrpay.runner.embedded import embedded_config

        data = load_yaml(REPO_DEV_CONFIG / "config.yaml")
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "config.yaml").write_text(
            yaml.safe_dump(embedded_config(data, "127.0.0.1", self.base), allow_unicode=True)
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, services: Iterable[str], *args: str) -> None:
        """Start with ``args`` after the data dir and port base; wait for the banner."""
        self.process = start(
            [QRPAY, "up", "--data-dir", str(self.data_dir), "--port-base", str(self.base), *args],
            log=self.log,
        )
        wait_for_http(
            [f"{self.url(name)}/ping" for name in services],
            timeout=60,
            process=self.process,
            log=self.log,
        )
        # The demo cards are bound once every service answers; the banner follows.
        wait_for_text(self.log, "Press Ctrl-C to stop.", timeout=30)

    def stop(self) -> int:
        assert self.process is not None
        return terminate(self.process, sig=signal.SIGINT, timeout=15)

    def kill(self) -> None:
        if self.process is not None:
            kill_group(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pos_sim(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """`qrpay-tools pos-sim --no-wait` against this iiko-integration, with ``args``."""
        command = [QRPAY_TOOLS, "pos-sim", "--url", self.url("iiko-integration"), "--no-wait"]
        return run([*command, *args], cwd=cwd)

    @contextlib.contextmanager
    def waiting_pos(
        self, cwd: Path, *items: str, options: Sequence[str] = ()
    ) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
        """pos-sim as in the restaurant: prints the bill of ``items`` (``name=price``) and
        waits for its payment (with ``options``); yields the process, its log and, once it
        printed the receipt, the order's deep link. Killed at the end."""
        log = cwd / "pos-sim.log"
        args = [arg for item in items for arg in ("--item", item)]
        sim = start(
            [
                QRPAY_TOOLS, "pos-sim", "--url", self.url("iiko-integration"), *args, *options,
                "--out-dir", str(cwd / "out"),
            ],
            log=log,
            cwd=cwd,
        )  # fmt: skip
        try:
            yield sim, log, link_of(wait_for_text(log, "Receipt: ", timeout=30))
        finally:
            kill_group(sim)

    def sell(self, cwd: Path, *items: str) -> str:
        """pos-sim opens an order of ``items`` (``name=price``), its QR code and receipt in
        ``cwd/out``; the order's deep link."""
        args = [arg for item in items for arg in ("--item", item)]
        sim = self.pos_sim(*args, "--out-dir", str(cwd / "out"), cwd=cwd)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        return link_of(sim.stdout)

    def guest(
        self, link: str, *args: str, card: str = "card-ok"
    ) -> subprocess.CompletedProcess[str]:
        """`qrpay-tools guest` pays ``link`` with ``card`` through this payments-eda."""
        api, cashback = self.url("payments-eda"), self.url("cashback")
        return run(
            [
                QRPAY_TOOLS,
                "guest",
                link,
                "--card",
                card,
                "--api",
                api,
                "--cashback-url",
                cashback,
                *args,
            ],
            timeout=60,
        )

    def pos_call(self, path: str, body: dict[str, object]) -> httpx.Response:
        """A POS API call as the restaurant's POS makes it (the dev key)."""
        from qrpay.kernel.config import load_yaml
        from qrpay.kernel.settings import REPO_DEV_CONFIG

        key = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]
        return httpx.post(
            f"{self.url('iiko-integration')}{path}",
            json=body,
            headers={"X-API-Key": key},
            timeout=5,
        )

    def cashback_balance(self, user: str, currency: str = "RUB") -> Decimal:
        """The user's cashback balance in ``currency``, as the tools read it."""
        from tests.support.tickets import ticket_headers

        answer = httpx.get(
            f"{self.url('cashback')}/v1/users/{user}/balance",
            headers=ticket_headers(to="cashback"),
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        balances = answer.json()["balances"]
        return sum(
            (Decimal(b["amount"]) for b in balances if b["currency"] == currency), Decimal(0)
        )

    def pos_status(self, order_id: str) -> str:
        """The order's status as the restaurant's POS (rest-1) reads it."""
        answer = self.pos_call("/orders/list", {"client_id": "rest-1", "orders": [order_id]})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["orders"][0]["status"])


class PortTaken(Exception):
    """Another process took one of the free ports we probed; start again on others."""


class ServedProcesses:
    """`qrpay serve` processes a test starts with one environment, each logging to
    ``tmp/<name>.log``; ``stop`` ends them all, their forked workers too."""

    tmp: Path
    env: dict[str, str]
    processes: list[tuple[subprocess.Popen[bytes], Path]]
    stop_timeout = 10.0
    log_tail = 4000

    def launch(
        self, name: str, port: int, log_name: str | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{log_name or name}.log"
        process = start(
            [QRPAY, "serve", name, "--port", str(port)], log=log, env=self.env, cwd=self.tmp
        )
        self.processes.append((process, log))
        return process, log

    @staticmethod
    def wait_ready(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        """Wait for the /ping of a launched process; PortTaken if another took its port."""
        try:
            wait_for_http([f"http://127.0.0.1:{port}/ping"], timeout=60, process=process, log=log)
        except AssertionError:
            if "already in use" in log.read_text(errors="replace"):
                raise PortTaken(name) from None
            raise

    def serve(self, name: str, port: int, log_name: str | None = None) -> None:
        self.wait_ready(name, port, *self.launch(name, port, log_name))

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-self.log_tail :]}"
            for _, log in self.processes
        )

    def stop(self) -> None:
        for process, _ in self.processes:
            terminate(process, timeout=self.stop_timeout)
        for process, _ in self.processes:
            kill_group(process)
