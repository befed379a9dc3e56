"""``qrpay serve NAME``: one service, the production way."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn

from qrpay.cli.common import describe, migrated, say_error, settings_with
from qrpay.kernel.logging import configure_logging
from qrpay.runner.config import check_config, check_secdist, load_config, load_secdist
from qrpay.runner.context import has_database, import_service_module, known_services
from qrpay.runner.embedded import EmbeddedError, bind_socket
from qrpay.runner.factory import SERVICE_ENV
from qrpay.runner.registry import DEFAULT_PORTS

FACTORY = "qrpay.runner.factory:create_app"


def fresh_metrics_dir(data_dir: Path, service: str) -> Path:
    # Files of dead workers from an earlier run would be summed in: start empty every time.
    parent = data_dir / "prometheus"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{service}-", dir=parent))


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_serve(*, name: str, host: str | None, port: int | None, workers: int, migrate: bool) -> int:
    if name not in known_services():
        say_error(f"unknown service {name!r}; known: {', '.join(known_services())}")
        return 2
    try:
        settings = settings_with(host=host)
    except Exception as exc:
        say_error(f"cannot start {name}: {describe(exc)}")
        return 2
    host = settings.host
    port = port if port is not None else DEFAULT_PORTS[name]
    configure_logging(settings.log_level, settings.log_format)
    try:
        import_service_module(name)
        # The workers check again as they build the app; here the operator gets one line.
        secdist = check_secdist(settings, load_secdist(settings.secdist))
        check_config(settings, load_config(settings.config))
    except Exception as exc:
        say_error(f"cannot start {name}: {describe(exc)}")
        return 2

    wanted = migrate and has_database(name)
    if wanted and not migrated(name, settings.database_url(name, secdist.databases)):
        return 2

    try:
        # uvicorn would only log a busy port; check first so the operator gets one clear line.
        bind_socket(host, port, name).close()
    except EmbeddedError as exc:
        say_error(str(exc))
        return 2

    os.environ[SERVICE_ENV] = name
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir(settings.data_dir, name))

    # uvicorn handles SIGTERM itself (finishes the requests in flight), then restores this
    # handler and raises the signal again: a graceful stop is a clean exit, code 0.
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        # Forwarded headers are believed in one place, kernel.edge, from the proxies the
        # live config trusts (http.trusted_proxies); uvicorn's list is fixed at start.
        proxy_headers=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
        # The POS stream pings at the application level (push.heartbeat_ms, a silent POS
        # closed with 4408); uvicorn's own keepalive would be a second timer per connection,
        # firing in waves, and close with 1011 (which the stream means as "eda unreadable").
        ws_ping_interval=None,
        ws_ping_timeout=None,
    )
    return 0
