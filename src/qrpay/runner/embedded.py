"""Every service in one process, each on its own port: the embedded mode (SPEC 3)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
import yaml

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import parse_config, parse_secdist
from qrpay.runner.registry import DEFAULT_PORTS, SERVICE_NAMES

BASE_PORT = DEFAULT_PORTS["api-proxy"]
CONFIG_HEADER = (
    "# Written by `qrpay up` from config/dev/config.yaml for this data directory.\n"
    "# Edit freely: it is re-read on change. `qrpay up` only keeps the service URLs\n"
    "# and the deep-link base in line with --host and --port-base.\n"
)


class EmbeddedError(Exception):
    """A start-up failure already put into one line."""


def ports_for(port_base: int) -> dict[str, int]:
    shift = port_base - BASE_PORT
    return {name: port + shift for name, port in DEFAULT_PORTS.items()}


def client_host(host: str) -> str:
    # A wildcard bind is not an address a client can dial.
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- api-proxy's public address (`qrpay up --public-url`) ---------------------------------
# A phone on the same network opens the payer page there: the QR codes point at it and
# api-proxy (only api-proxy) listens on every interface.
PUBLIC_BIND = "0.0.0.0"


def public_base(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash, or EmbeddedError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EmbeddedError(f"--public-url {url!r} is not an http(s)://host[:port] address")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise EmbeddedError(f"--public-url {url!r} must not carry a query, fragment or user")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise EmbeddedError(f"--public-url {url!r} has a bad port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def payer_page_url(host: str, port_base: int, public_url: str | None = None) -> str:
    if public_url:
        return f"{public_url}/go-pay/orders"
    return f"http://{url_host(client_host(host))}:{ports_for(port_base)['api-proxy']}/go-pay/orders"


# -------------------------------------------------------------------------------------------


def embedded_config(
    data: dict[str, Any], host: str, port_base: int, public_url: str | None = None
) -> dict[str, Any]:
    """The dev config with every service URL and the deep-link base moved to host/ports,
    and the development sign-in on unless the file turns it off."""
    result = dict(data)
    ports = ports_for(port_base)
    reach = url_host(client_host(host))
    services = {name: dict(value) for name, value in (data.get("services") or {}).items()}
    for name in SERVICE_NAMES:
        services.setdefault(name, {})
        services[name]["base_url"] = f"http://{reach}:{ports[name]}"
    result["services"] = services
    deeplink = dict(data.get("deeplink") or {})
    deeplink["base"] = payer_page_url(host, port_base, public_url)
    result["deeplink"] = deeplink
    # The embedded mode is development: the demo users' sign-in is on unless the file says
    # otherwise (a data directory written before the switch existed has no such section).
    sessions = dict(data.get("sessions") or {})
    sessions.setdefault("development_sign_in", True)
    result["sessions"] = sessions
    # Likewise the tools' service tickets (the guest CLI, the demo cards).
    tickets = dict(data.get("service_tickets") or {})
    tickets.setdefault("tools_allowed", True)
    result["service_tickets"] = tickets
    return result


@dataclass(frozen=True)
class EmbeddedFiles:
    config: Path
    secdist: Path
    config_written: bool
    secdist_written: bool


def prepare_data_dir(
    data_dir: Path, host: str, port_base: int, public_url: str | None = None
) -> EmbeddedFiles:
    """Write config.yaml and secdist.yaml on first start; later starts keep them (and the data)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "config.yaml"
    secdist_path = data_dir / "secdist.yaml"

    base = (
        load_yaml(config_path)
        if config_path.exists()
        else load_yaml(REPO_DEV_CONFIG / "config.yaml")
    )
    wanted = embedded_config(base, host, port_base, public_url)
    config_written = False
    if not config_path.exists() or wanted != base:
        parse_config(wanted)  # refuse to write a file the services would reject
        _write_atomic(
            config_path, CONFIG_HEADER + yaml.safe_dump(wanted, allow_unicode=True, sort_keys=False)
        )
        config_written = True

    secdist_written = False
    source = (REPO_DEV_CONFIG / "secdist.yaml").read_text(encoding="utf-8")
    if not secdist_path.exists():
        parse_secdist(yaml.safe_load(source))
        _write_atomic(secdist_path, source)
        secdist_path.chmod(0o600)
        secdist_written = True
    else:
        secdist_written = _add_ticket_keys(secdist_path, yaml.safe_load(source))
    return EmbeddedFiles(config_path, secdist_path, config_written, secdist_written)


def _add_ticket_keys(path: Path, development: dict[str, Any]) -> bool:
    """A data directory from before per-service ticket keys (issue 20) gets the development
    ones, and loses the shared key of issue 11 if it has one (its secdist is a copy of the
    development file too); True if the file was changed."""
    current = path.read_text(encoding="utf-8")
    data = yaml.safe_load(current) or {}
    if not isinstance(data, dict) or "ticket_keys" in data:
        return False
    data.pop("service_ticket_keys", None)
    data["ticket_keys"] = development["ticket_keys"]
    _write_atomic(path, yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return True


def _write_atomic(path: Path, text: str) -> None:
    # The services re-read these files on change; never let them see half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def bind_socket(host: str, port: int, service: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EmbeddedError(
                f"port {port} for {service} on {host} is already in use — "
                "stop what holds it or pick another --port-base"
            ) from None
        raise EmbeddedError(
            f"cannot listen on {host}:{port} for {service}: {exc.strerror}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_all(host: str, ports: dict[str, int], services: Iterable[str]) -> dict[str, socket.socket]:
    """Take every port before anything starts, so a busy port fails fast and in one line."""
    bound: dict[str, socket.socket] = {}
    try:
        for name in services:
            bound[name] = bind_socket(host, ports[name], name)
    except EmbeddedError:
        for sock in bound.values():
            sock.close()
        raise
    return bound


class _QuietServer(uvicorn.Server):
    """A server that leaves signals to its owner: several servers share one process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        # Forwarded headers are believed in one place, kernel.edge (http.trusted_proxies);
        # uvicorn's own would trust 127.0.0.1 whatever the config says.
        proxy_headers=False,
        # A stuck client must not hold Ctrl-C hostage for long.
        timeout_graceful_shutdown=5,
    )


async def serve_all(
    apps: dict[str, Any],
    sockets: dict[str, socket.socket],
    host: str,
    on_started: Callable[[], Awaitable[None] | None] | None = None,
) -> list[str]:
    """Serve until SIGINT/SIGTERM; return the names of services that failed to start."""
    servers = {
        name: _QuietServer(server_config(app, host, sockets[name].getsockname()[1]))
        for name, app in apps.items()
    }
    loop = asyncio.get_running_loop()
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for server in servers.values():
            if server.should_exit:
                # A second Ctrl-C: stop waiting for open connections.
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)

    failed: list[str] = []

    async def run(name: str, server: uvicorn.Server) -> None:
        try:
            await server.serve(sockets=[sockets[name]])
        except SystemExit:
            # uvicorn exits the process when an app's start-up fails; here it stops the rest.
            failed.append(name)
            stop_all()
            return
        if not server.started and not stopping:
            failed.append(name)
            stop_all()

    async def announce() -> None:
        # uvicorn exposes `started` as a plain flag, not an event: poll it.
        while not stopping and not all(server.started for server in servers.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if not stopping and on_started is not None:
            result = on_started()
            if inspect.isawaitable(result):
                await result

    try:
        await asyncio.gather(announce(), *(run(name, server) for name, server in servers.items()))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return failed
