"""``qrpay up``: the whole system in one process (SPEC 3, embedded mode)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import uvloop
from rich.console import Console

from qrpay.cli.common import describe, relative, safe_url, say_error, settings_with
from qrpay.kernel.config import load_yaml, parse_secdist
from qrpay.kernel.logging import configure_logging
from qrpay.kernel.migrations import upgrade
from qrpay.kernel.settings import Settings
from qrpay.runner.context import build_service_app, has_database, known_services, make_context
from qrpay.runner.embedded import (
    BASE_PORT,
    EmbeddedError,
    bind_all,
    client_host,
    ports_for,
    prepare_data_dir,
    serve_all,
    url_host,
)


def run_up(*, data_dir: Path | None, host: str, port_base: int, console: Console) -> int:
    data_dir = data_dir or Settings().data_dir
    ports = ports_for(port_base)
    if min(ports.values()) < 1 or max(ports.values()) > 65535:
        say_error(f"--port-base {port_base} puts ports outside 1..65535")
        return 2
    # An interactive run wants quiet, readable logs unless the operator asked otherwise.
    os.environ.setdefault("QRPAY_LOG_LEVEL", "WARNING")
    os.environ.setdefault("QRPAY_LOG_FORMAT", "console")
    try:
        files = prepare_data_dir(data_dir, host, port_base)
    except Exception as exc:
        say_error(f"cannot prepare {data_dir}: {describe(exc)}")
        return 2
    settings = settings_with(
        data_dir=data_dir, host=host, config=files.config, secdist=files.secdist
    )
    configure_logging(settings.log_level, settings.log_format)
    services = known_services()

    try:
        sockets = bind_all(host, ports, services)
    except EmbeddedError as exc:
        say_error(str(exc))
        return 2

    try:
        contexts = {name: make_context(name, settings, background_jobs=True) for name in services}
    except Exception as exc:
        _close(sockets)
        say_error(f"bad config or secdist ({settings.config}, {settings.secdist}): {describe(exc)}")
        return 2

    for name, ctx in contexts.items():
        if not has_database(name):
            continue
        url = ctx.database_url()
        try:
            # alembic is synchronous: run it before the event loop exists.
            upgrade(name, url)
        except Exception as exc:
            _close(sockets)
            say_error(f"migrating {name} at {safe_url(url)} failed: {describe(exc)}")
            return 2

    try:
        apps = {name: build_service_app(ctx) for name, ctx in contexts.items()}
    except Exception as exc:
        _close(sockets)
        say_error(f"cannot build the services: {describe(exc)}")
        return 2

    def announce() -> None:
        print_next_steps(console, settings, data_dir, host, port_base, services)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        failed = runner.run(serve_all(apps, sockets, host, on_started=announce))
    _close(sockets)
    if failed:
        say_error(f"{', '.join(failed)} failed to start (see the log above); stopped everything")
        return 1
    console.print("qrpay stopped.", markup=False)
    return 0


def _close(sockets: dict[str, socket.socket]) -> None:
    for sock in sockets.values():
        sock.close()


def print_next_steps(
    console: Console,
    settings: Settings,
    data_dir: Path,
    host: str,
    port_base: int,
    services: list[str],
) -> None:
    ports = ports_for(port_base)
    reach = url_host(client_host(host))
    iiko_url = f"http://{reach}:{ports['iiko-integration']}"
    pos_cmd = (
        "qrpay pos-sim"
        if iiko_url == "http://127.0.0.1:8081"
        else f"qrpay pos-sim --url {iiko_url}"
    )
    try:
        keys = parse_secdist(load_yaml(settings.secdist)).api_keys
        key_names = ", ".join(f"{key.name} ({', '.join(sorted(key.client_ids))})" for key in keys)
    except Exception:
        key_names = "see the secdist file"
    console.print(
        f"[bold green]qrpay is up[/] — {len(services)} services, data in {relative(data_dir)}"
    )
    console.print(f"  config:   {settings.config}", markup=False)
    console.print(f"  secdist:  {settings.secdist}", markup=False)
    for name in services:
        console.print(f"  {name:<17} http://{reach}:{ports[name]}/ping", markup=False)
    console.print("Next:", markup=False)
    console.print(f"  POS simulator:  {pos_cmd}", markup=False)
    console.print(f"  demo API key:   {key_names or 'none configured'}", markup=False)
    payer = f"http://{reach}:{ports['api-proxy']}/go-pay/orders"
    note = "" if "api-proxy" in services else " (api-proxy is not part of this build yet)"
    console.print(f"  payer page:     {payer}{note}", markup=False)
    if port_base != BASE_PORT:
        console.print(
            f"  (ports shifted by {port_base - BASE_PORT} from the defaults)", markup=False
        )
    console.print("Press Ctrl-C to stop.", markup=False)
