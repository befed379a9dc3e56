"""`python -m qrpay_tools.cluster up|down|restart|ctl`: a production-like cluster on this machine.

`up` creates (or reuses) one PostgreSQL database per service with a database and
one for the durable queue, writes config and secdist under the var directory, runs
`qrpay db upgrade`, then has supervisord (supervised.py: restarts on crash with backoff,
rotated logs, graceful stop) run with `qrpay serve` two instances of iiko-integration and
of payments-eda and one of every other service, one `qrpay worker payments-eda`, and
Debian's nginx (`make apt-nginx` installs it) in front: api-proxy on the port base, the
iiko-integration load balancer on base+1, the payments-eda one on base+2; the services
listen on base+20 and up. Logs in <var>/logs. `down` stops the services and the worker
together (SIGTERM: requests and tasks in flight finish; SIGKILL after their stopwaitsecs),
then nginx and supervisord.

What stays here, because supervisord does not do it: the databases, config and migrations
before anything starts; readiness (supervisord counts a program as started once it has
lived START_SECONDS; `up` and `restart` wait for `/ready`, or for the worker to consume); the
demo cards; the nginx and supervisord configs, written from one topology (``Layout``);
stopping the services before nginx, all at once (supervisord stops one program at a time).

`up --set KEY=VALUE` (repeatable) changes one value of the config the cluster writes, by
its dotted path, the value in YAML: `--set payments.hold_watchdog_seconds=10`. The result
is validated before anything starts.

`restart NAME` (`payments-eda-1`, `eda`, `worker-payments-eda`, `nginx`, ...) stops the
program if it runs (gracefully) and starts it again through supervisord, then waits until it
is ready. `ctl ARGS` is `supervisorctl ARGS` on this cluster (`ctl status`, `ctl tail -f eda`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from qrpay.runner.registry import BY_NAME, SERVICE_MODULES
from qrpay_tools import local
from qrpay_tools.cluster import supervised
from qrpay_tools.cluster.supervised import Program, Supervisor
from qrpay_tools.identity import tools_headers
from qrpay_tools.ports import port_is_free

# `restart` is what a supervisor runs on a loaded machine: it imports nothing heavy (no
# psycopg, pydantic or the services); `up` imports what it needs when it runs.

DEFAULT_VAR = Path("var/cluster")
DEFAULT_PORT_BASE = 9080
DEFAULT_DB_PREFIX = "qrpay_cluster"
# The longest a program may take to stop under supervisord before it is SIGKILLed.
STOP_TIMEOUT = float(max(supervised.DRAIN.values()) + supervised.STOP_MARGIN)
# Behind nginx: the two balanced services (two instances each) and the public api-proxy.
BALANCED = ("iiko-integration", "payments-eda")
# Every other service of the registry, one instance each, in start-up order.
SINGLE = tuple(name for name in SERVICE_MODULES if name not in BALANCED)
WORKER_OF = "payments-eda"
WORKER = f"worker-{WORKER_OF}"
NGINX = "nginx"
WORKER_READY = "worker: consuming"
WORKER_CONCURRENCY = 16
# Generous: on a loaded machine ten processes importing at once take a long time; a program
# that cannot start at all fails sooner (FATAL under supervisord).
READY_TIMEOUT = 180.0
# Requests nginx lets through at once to each balanced service (all its instances together);
# beyond it nginx refuses at once with 503 `overloaded`, so twice the capacity meets fast
# refusals at the door instead of queues that grow in starved Python event loops.
DEFAULT_ADMISSION = 128


@dataclass(frozen=True)
class Layout:
    var: Path
    port_base: int
    admission: int = DEFAULT_ADMISSION

    @property
    def nginx_ports(self) -> dict[str, int]:
        base = self.port_base
        return {"api-proxy": base, "iiko-integration": base + 1, "payments-eda": base + 2}

    @property
    def instances(self) -> list[tuple[str, str, int]]:
        """(instance name, service, port) of every `qrpay serve`."""
        found: list[tuple[str, str, int]] = []
        port = self.port_base + 20
        for service in BALANCED:
            for index in (1, 2):
                found.append((f"{service}-{index}", service, port))
                port += 1
        for service in SINGLE:
            found.append((service, service, port))
            port += 1
        return found

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    @property
    def logs(self) -> Path:
        return self.var / "logs"

    @property
    def nginx_conf(self) -> Path:
        return self.var / "nginx.conf"

    @property
    def config(self) -> Path:
        return self.var / "config.yaml"


def say(line: str) -> None:
    print(line, flush=True)


# -- nginx ---------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return local.program("nginx")


OVERLOADED_BODY = (
    '{"code": "overloaded", "message": "Too many requests at once; retry in a second."}'
)


# What nginx tells the services of the client (kernel.edge believes it from
# http.trusted_proxies only): its address, and the scheme and host it asked for. Each is
# set, never appended to: nginx is the first proxy, so whatever a client sent in these
# headers is its own claim, dropped here. ``Forwarded`` is cleared (an empty value is not
# sent): a client's own would otherwise reach the services beside nginx's X-Forwarded-For.
FORWARDED_HEADERS = (
    "proxy_set_header Host $http_host;\n"
    "proxy_set_header X-Forwarded-For $remote_addr;\n"
    "proxy_set_header X-Forwarded-Proto $scheme;\n"
    "proxy_set_header X-Forwarded-Host $http_host;\n"
    'proxy_set_header Forwarded "";\n'
)


def forwarded_headers(indent: str) -> str:
    return "".join(f"{indent}{line}\n" for line in FORWARDED_HEADERS.splitlines())


def nginx_config(layout: Layout) -> str:
    var = layout.var.resolve()
    upstreams = []
    servers = []
    for service, listen in layout.nginx_ports.items():
        name = service.replace("-", "_")
        members = "".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n"
            for _, svc, port in layout.instances
            if svc == service
        )
        upstreams.append(f"    upstream {name} {{\n{members}        keepalive 32;\n    }}\n")
        servers.append(
            f"    server {{\n"
            f"        listen 127.0.0.1:{listen};\n"
            f"        limit_conn in_flight {layout.admission};\n"
            f"        error_page 503 = @overloaded;\n"
            f"        location @overloaded {{\n"
            f"            default_type application/json;\n"
            f"            add_header Retry-After 1 always;\n"
            f"            return 503 '{OVERLOADED_BODY}';\n"
            f"        }}\n"
            f"        location / {{\n"
            f"            proxy_pass http://{name};\n"
            f"            proxy_http_version 1.1;\n"
            f'            proxy_set_header Connection "";\n'
            + forwarded_headers("            ")
            + "            proxy_read_timeout 30s;\n"
            "        }\n"
            "    }\n"
        )
    return (
        "# Written by `python -m qrpay_tools.cluster up`; rewritten on every start.\n"
        "worker_processes 1;\n"
        f"pid {var}/nginx.pid;\n"
        f"error_log {var}/logs/nginx-error.log warn;\n"
        "worker_rlimit_nofile 20000;\n"
        # 1,024 ran out at 1,500 RPS from a few hundred client connections.
        "events { worker_connections 8192; }\n"
        "http {\n"
        # Keyed by the listening port: one in-flight count per balanced service. nginx's own
        # 503s (only these: proxy_intercept_errors is off) get the services' error body.
        "    limit_conn_zone $server_port zone=in_flight:1m;\n"
        "    limit_conn_status 503;\n"
        "    limit_conn_log_level warn;\n"
        f"    access_log {var}/logs/nginx-access.log;\n"
        f"    client_body_temp_path {var}/nginx/client_body;\n"
        f"    proxy_temp_path {var}/nginx/proxy;\n"
        f"    fastcgi_temp_path {var}/nginx/fastcgi;\n"
        f"    uwsgi_temp_path {var}/nginx/uwsgi;\n"
        f"    scgi_temp_path {var}/nginx/scgi;\n"
        "    keepalive_timeout 65;\n"
        "    client_max_body_size 1m;\n" + "".join(upstreams) + "".join(servers) + "}\n"
    )


def nginx_args(nginx: str, layout: Layout) -> list[str]:
    var = layout.var.resolve()
    return [
        nginx,
        "-c",
        str(var / "nginx.conf"),
        "-p",
        f"{var}/",
        "-e",
        f"{var}/logs/nginx-error.log",
    ]


def nginx_pid(layout: Layout) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((layout.var / "nginx.pid").read_text().strip())
    return None


# -- processes -----------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    # A zombie has finished; a reused pid runs something else.
    return state != "Z" and (b"qrpay" in cmdline or b"nginx" in cmdline)


def read_pids(layout: Layout) -> list[dict[str, object]]:
    """The services and the worker supervisord runs now: name, pid (0 while down), port,
    state; empty when supervisord does not answer."""
    supervisor = Supervisor(layout.var)
    if not supervisor.answering():
        return []
    ports = {name: port for name, _, port in layout.instances}
    return [
        {
            "name": str(info["name"]),
            "pid": int(info["pid"]),
            "port": ports.get(str(info["name"]), 0),
            "state": str(info["statename"]),
        }
        for info in supervisor.processes()
        if info["name"] != NGINX
    ]


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# -- databases and config --------------------------------------------------------------


class BadOverride(ValueError):
    """A `--set KEY=VALUE` that does not name a config value or gives it a bad one."""


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> None:
    """``--set a.b.c=VALUE``: put YAML ``VALUE`` at ``config[a][b][c]`` (sections must exist)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path):
            raise BadOverride(f"--set {item!r}: expected KEY=VALUE, KEY a dotted config path")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise BadOverride(f"--set {item!r}: the value is not YAML: {exc}") from None
        node: Any = config
        for depth, part in enumerate(path[:-1]):
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                where = ".".join(path[: depth + 1])
                raise BadOverride(f"--set {item!r}: {where} is not a config section")
        node[path[-1]] = value
    from qrpay.runner.config import parse_config

    try:
        parse_config(config)
    except ValueError as exc:
        raise BadOverride(f"--set {' '.join(overrides)}: the config is not valid: {exc}") from None


def configure(layout: Layout, db_prefix: str, overrides: list[str] | None = None) -> dict[str, str]:
    from qrpay.runner.context import has_database

    services = {service for _, service, _ in layout.instances}
    databases = {
        service: local.ensure_database(f"{db_prefix}_{service.replace('-', '_')}")
        for service in sorted(services)
        if has_database(service)
    }
    queue = local.ensure_database(f"{db_prefix}_queue")
    # Callers reach the balanced services and api-proxy through nginx, the rest directly.
    ports = {service: port for _, service, port in layout.instances} | layout.nginx_ports
    (layout.var / "var").mkdir(parents=True, exist_ok=True)
    env = local.write_config(layout.var.resolve(), ports, databases)
    config = yaml.safe_load((layout.var / "config.yaml").read_text())
    config["deeplink"]["base"] = f"{layout.url(layout.nginx_ports['api-proxy'])}/go-pay/orders"
    # nginx, on this machine, is the proxy whose forwarded headers the services believe.
    config["http"]["trusted_proxies"] = ["127.0.0.1"]
    apply_overrides(config, overrides or [])
    layout.config.write_text(yaml.safe_dump(config, allow_unicode=True))
    secdist = yaml.safe_load((layout.var / "secdist.yaml").read_text())
    secdist["queue_database"] = queue
    # `qrpay db upgrade` (every database) reads the whole file.
    (layout.var / "secdist.yaml").write_text(yaml.safe_dump(secdist))
    write_service_secdists(layout, secdist)
    env["QRPAY_LOG_LEVEL"] = "INFO"
    return env


def service_secdist(layout: Layout, service: str) -> Path:
    return layout.var / f"secdist-{service}.yaml"


def write_service_secdists(layout: Layout, secdist: dict[str, Any]) -> None:
    """One secdist per service, holding its own private ticket key only, as in production
    (`qrpay secrets generate`): no process of the cluster can sign as another. The keys
    are the development ones, so the tools and the tests sign as any service, as on
    `make run`."""
    private = secdist["ticket_keys"]["private"]
    for service in SERVICE_MODULES:
        own = {**secdist, "ticket_keys": {**secdist["ticket_keys"], "private": {}}}
        own["ticket_keys"]["private"] = {service: private[service]}
        path = service_secdist(layout, service)
        path.write_text(yaml.safe_dump(own))
        path.chmod(0o600)


def process_env(layout: Layout, env: dict[str, str], args: list[str]) -> dict[str, str]:
    """``env`` with the secdist of the service ``args`` runs (`qrpay serve|worker NAME`)."""
    path = service_secdist(layout, args[2]) if len(args) > 2 else None
    return {**env, "QRPAY_SECDIST": str(path.resolve())} if path and path.is_file() else env


def bind_demo_cards(layout: Layout) -> None:
    demo = yaml.safe_load((layout.var / "config.yaml").read_text()).get("demo") or {}
    port = next(port for _, service, port in layout.instances if service == "cardstorage")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for card in demo.get("cards", []):
        body = {
            "user_id": demo["user_id"],
            "token": card["token"],
            "system": card["system"],
            "last4": card["last4"],
            "expiry_month": card["expiry_month"],
            "expiry_year": card["expiry_year"],
        }
        request = urllib.request.Request(  # noqa: S310 - an http URL built here
            f"{layout.url(port)}/v1/payment-methods/{card['id']}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **tools_headers("cardstorage")},
            method="PUT",
        )
        with opener.open(request, timeout=10):
            pass  # an answer other than 2xx raises HTTPError (an OSError)


# -- commands --------------------------------------------------------------------------


def serve_program(name: str, service: str, port: int) -> Program:
    """`qrpay serve` of ``service`` at its nice level (the registry's)."""
    return Program(name, local.serve_args(service, port), "serve", port, nice=BY_NAME[service].nice)


def worker_program() -> Program:
    """`qrpay worker payments-eda`, at payments-eda's nice level."""
    args = local.worker_args(WORKER_CONCURRENCY)
    return Program(WORKER, args, "worker", nice=BY_NAME[WORKER_OF].nice)


def programs(layout: Layout, nginx: str) -> list[Program]:
    """What `up` runs under supervisord: every `qrpay serve`, the worker, nginx (which
    serves the POS and the payments alike: not niced)."""
    found = [serve_program(name, service, port) for name, service, port in layout.instances]
    found.append(worker_program())
    # In the foreground: supervisord is its parent and restarts it too.
    found.append(Program(NGINX, [*nginx_args(nginx, layout), "-g", "daemon off;"], "nginx"))
    return found


def up(layout: Layout, db_prefix: str, overrides: list[str] | None = None) -> int:
    import psycopg

    if Supervisor(layout.var).answering():
        live = read_pids(layout)
        say(
            f"qrpay cluster: already running ({len(live)} programs under supervisord, "
            f"{supervised.config_path(layout.var)}); stop it first with `make cluster-stop`"
        )
        return 1
    ports = list(layout.nginx_ports.values()) + [port for _, _, port in layout.instances]
    busy = [port for port in ports if not port_is_free(port)]
    if busy:
        say(f"qrpay cluster: ports already in use: {', '.join(map(str, busy))}")
        return 1
    nginx = local.require_program("nginx")
    layout.logs.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (layout.var / "nginx" / sub).mkdir(parents=True, exist_ok=True)
    try:
        env = configure(layout, db_prefix, overrides)
        local.migrate(env)
    except psycopg.Error as exc:
        say(f"qrpay cluster: PostgreSQL at {local.PG_ADMIN}: {exc}".strip())
        return 1
    except (BadOverride, RuntimeError) as exc:
        say(f"qrpay cluster: {exc}")
        return 1
    layout.nginx_conf.write_text(nginx_config(layout))
    started = programs(layout, nginx)
    try:
        launch(layout, env, started)
        wait_everything(layout, started)
    except (RuntimeError, OSError) as exc:
        say(f"qrpay cluster: {exc}; logs in {layout.logs}; stopping what started")
        down(layout, quiet=True)
        return 1
    print_banner(layout)
    return 0


def launch(layout: Layout, env: dict[str, str], started: list[Program]) -> None:
    """Writes supervisord.conf for ``started`` and starts supervisord (it daemonizes) with
    ``env`` on top of this process's environment: every program inherits it."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    for program in started:
        # A fresh log per start: readiness is read from the worker's.
        for old in layout.logs.glob(f"{program.name}.log*"):
            old.unlink()
    # Each service's process gets the secdist with its own private ticket key only.
    started = [replace(program, env=process_env(layout, {}, program.args)) for program in started]
    config = supervised.config_path(layout.var)
    config.write_text(supervised.config_text(layout.var, started))
    local.run_checked(supervised.supervisord_args(layout.var), env, "supervisord did not start")
    supervisor = Supervisor(layout.var)
    deadline = time.monotonic() + 30
    while not supervisor.answering():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"supervisord did not answer on {supervised.socket_path(layout.var)}"
            )
        time.sleep(0.1)


def wait_ready(layout: Layout, name: str, port: int, *, log_offset: int = 0) -> None:
    """Until the program answers 200 on /ready (a worker: logs that it consumes after byte
    ``log_offset``); RuntimeError once supervisord gave it up or READY_TIMEOUT passed."""
    supervisor = Supervisor(layout.var)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    log = layout.logs / f"{name}.log"
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        state = str(supervisor.info(name)["statename"])
        if state in supervised.DOWN_FOR_GOOD:
            raise RuntimeError(f"{name} is {state} under supervisord (log: {log})")
        if port:
            # Refused, reset, timed out or an HTTP error (all OSError): not ready yet.
            with (
                contextlib.suppress(OSError),
                opener.open(f"{layout.url(port)}/ready", timeout=5) as answer,
            ):
                if answer.status == 200:
                    return
        elif log.exists():
            text = log.read_bytes()
            # A rotated log starts again from the beginning.
            if WORKER_READY.encode() in text[log_offset if len(text) >= log_offset else 0 :]:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT:.0f}s (log: {log})")
        time.sleep(0.2)


def wait_everything(layout: Layout, started: list[Program]) -> None:
    """Every service ready, nginx answering, the worker consuming; then the demo cards."""
    for program in started:
        if program.kind != "nginx":
            wait_ready(layout, program.name, program.port)
    if any(program.kind == "nginx" for program in started):
        for port in layout.nginx_ports.values():
            local.wait_ready(None, f"{layout.url(port)}/ready", timeout=READY_TIMEOUT)
    bind_demo_cards(layout)


def wait_restarted(layout: Layout, name: str, old_pid: int, *, log_offset: int = 0) -> int:
    """After ``name`` (pid ``old_pid``) died: until supervisord has started it again and it is
    ready; returns the new pid."""
    supervisor = Supervisor(layout.var)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        info = supervisor.info(name)
        if info["statename"] in supervised.STARTED and int(info["pid"]) not in (0, old_pid):
            break
        if info["statename"] in supervised.DOWN_FOR_GOOD or time.monotonic() > deadline:
            raise RuntimeError(f"supervisord did not start {name} again: {info['statename']}")
        time.sleep(0.1)
    port = next((port for instance, _, port in layout.instances if instance == name), 0)
    wait_ready(layout, name, port, log_offset=log_offset)
    return int(info["pid"])


def print_banner(layout: Layout) -> None:
    nginx = layout.nginx_ports
    bin_dir = Path(local.QRPAY).parent
    cashback = next(port for _, service, port in layout.instances if service == "cashback")
    say("qrpay cluster is up (PostgreSQL, nginx, `qrpay serve` + `qrpay worker`, supervisord):")
    say(f"  api-proxy (guest app, payer page)  {layout.url(nginx['api-proxy'])}   via nginx")
    say(
        f"  iiko-integration (POS API), 2 inst. {layout.url(nginx['iiko-integration'])}   via nginx"
    )
    say(f"  payments-eda, 2 instances           {layout.url(nginx['payments-eda'])}   via nginx")
    for entry in read_pids(layout):
        port = int(str(entry["port"]))
        where = layout.url(port) if port else "(queue worker)"
        say(f"    {entry['name']!s:22} pid {entry['pid']!s:<8} {where}")
    say(f"  logs: {layout.logs} (rotated by supervisord)")
    say(
        f"  supervisorctl: {shlex.join(supervised.supervisorctl_args(layout.var, 'status'))}"
        " (or `make cluster-ctl ARGS=status`)"
    )
    say("Try it:")
    say(
        f"  {bin_dir}/qrpay-tools pos-sim --url {layout.url(nginx['iiko-integration'])} "
        '--client-id rest-1 --item "Borscht=450" --item "Pelmeni=650"'
    )
    say(
        f"  {bin_dir}/qrpay-tools guest '<the Link: line>' --api {layout.url(nginx['payments-eda'])} "
        f"--cashback-url {layout.url(cashback)} --card card-ok"
    )
    say("Stop it with `make cluster-stop` (python -m qrpay_tools.cluster down).")


def down(layout: Layout, *, quiet: bool = False, patience: float | None = None) -> int:
    """The services and the worker drain together (SIGTERM, SIGKILL after their
    stopwaitsecs, or after ``patience`` seconds when that is shorter: a benchmark needs no
    graceful end), then supervisord stops nginx and exits."""
    supervisor = Supervisor(layout.var)
    pid = supervised.supervisord_pid(layout.var)
    if pid is None or wait_gone(pid, 0):
        if not quiet:
            say("qrpay cluster: nothing to stop (supervisord is not running)")
        return 0
    log = layout.logs / "supervisord.log"
    offset = supervised.log_size(log)
    services: list[str] = []
    still: list[str] = []
    try:
        services = [str(p["name"]) for p in supervisor.processes() if p["name"] != NGINX]
        for name in services:
            supervisor.stop(name, wait=False)
        still = supervised.wait_stopped(supervisor, services, patience or STOP_TIMEOUT + 5)
        if patience is not None:
            for name in still:
                supervisor.kill(name)
            still = supervised.wait_stopped(supervisor, services, STOP_TIMEOUT)
        supervisor.shutdown()
    except (OSError, xmlrpc.client.Error):
        # Not answering, or already shutting down: on SIGTERM it stops every program itself.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, STOP_TIMEOUT + 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed = supervised.killed_in_log(log, offset)
    if not quiet:
        say(
            f"qrpay cluster stopped: {len(services)} programs and nginx under supervisord"
            + (f" ({', '.join(killed)} killed after their stop timeout)" if killed else "")
            + (f"; still running after {STOP_TIMEOUT:.0f}s: {', '.join(still)}" if still else "")
        )
    return 0


def restart(layout: Layout, name: str) -> int:
    """Stop one program if it runs (SIGTERM, drain) and start it again; wait until ready."""
    supervisor = Supervisor(layout.var)
    if not supervisor.answering():
        say(f"qrpay cluster: supervisord does not answer in {layout.var} (is the cluster up?)")
        return 1
    names = [str(p["name"]) for p in supervisor.processes()]
    if name not in names:
        say(f"qrpay cluster: no program {name!r} (programs: {', '.join(names)})")
        return 1
    began = time.monotonic()
    log = layout.logs / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    supervisor.stop(name)
    supervisor.start(name)
    try:
        port = next((port for instance, _, port in layout.instances if instance == name), 0)
        if name != NGINX:
            wait_ready(layout, name, port, log_offset=offset)
    except RuntimeError as exc:
        say(f"qrpay cluster: {exc}")
        return 1
    say(
        f"qrpay cluster: restarted {name}: pid {supervisor.info(name)['pid']}, ready in "
        f"{time.monotonic() - began:.1f}s"
    )
    return 0


def ctl(layout: Layout, args: list[str]) -> int:
    """`supervisorctl ARGS` on this cluster's supervisord."""
    return subprocess.run(supervised.supervisorctl_args(layout.var, *args), check=False).returncode


def add_config_options(parser: argparse.ArgumentParser, *, admission: str, overrides: str) -> None:
    """``--admission N`` and ``--set KEY=VALUE``, their help after the given prefixes."""
    parser.add_argument(
        "--admission",
        type=int,
        default=DEFAULT_ADMISSION,
        help=f"{admission}requests nginx lets through at once to each balanced service; "
        "beyond it a fast 503 overloaded",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help=f"{overrides}set a config value by dotted path, the value in YAML "
        "(e.g. --set payments.hold_watchdog_seconds=10); repeatable",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrpay_tools.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "restart", "ctl"))
    parser.add_argument(
        "instance",
        nargs="*",
        help="restart: the program to start again (payments-eda-1, eda, worker-payments-eda, "
        "nginx, ...); ctl: supervisorctl's arguments",
    )
    parser.add_argument("--var-dir", type=Path, default=DEFAULT_VAR)
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument(
        "--db-prefix", default=DEFAULT_DB_PREFIX, help="databases are <prefix>_<service>"
    )
    add_config_options(parser, admission="up: ", overrides="up: ")
    args = parser.parse_args(argv)
    layout = Layout(args.var_dir, args.port_base, args.admission)
    if args.command == "ctl":
        return ctl(layout, args.instance or ["status"])
    if args.command == "restart":
        if len(args.instance) != 1:
            parser.error("restart needs one program name")
        return restart(layout, args.instance[0])
    if args.instance:
        parser.error(f"{args.command} takes no program name")
    if args.overrides and args.command != "up":
        parser.error("--set applies to up only")
    if args.command == "up":
        return up(layout, args.db_prefix, args.overrides)
    return down(layout)


if __name__ == "__main__":
    sys.exit(main())
