"""`python -m qrpay_tools.cluster up|down|restart`: a production-like cluster on this machine.

`up` creates (or reuses) one PostgreSQL database per service with a database and
one for the durable queue, writes config and secdist under the var directory, runs
`qrpay db upgrade`, starts with `qrpay serve` two instances of iiko-integration and
of payments-eda and one of every other service, one `qrpay worker payments-eda`,
all detached (logs in <var>/logs, pids in <var>/pids.json), and puts Debian's nginx
(`make apt-nginx` installs it) in front: api-proxy on the port base, the iiko-integration
load balancer on base+1, the payments-eda one on base+2; the services listen on
base+20 and up. `down` stops them gracefully (SIGTERM, SIGKILL after 20 s) and nginx.

`up --set KEY=VALUE` (repeatable) changes one value of the config the cluster writes, by
its dotted path, the value in YAML: `--set payments.hold_watchdog_seconds=10`. The result
is validated before anything starts.

`restart NAME` (a name from pids.json: `payments-eda-1`, `eda`, `worker-payments-eda`, ...)
is what a supervisor does for one instance: stops it if it still runs (SIGTERM, SIGKILL
after 20 s), starts it again with the arguments and environment `up` gave it, appending to
its log, records the new pid in pids.json and waits until it is ready (`/ready`, or a
worker consuming).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qrpay_tools import local
from qrpay_tools.identity import tools_headers
from qrpay_tools.ports import port_is_free, wait_port_free

# `restart` is what a supervisor runs on a loaded machine: it imports nothing heavy (no
# psycopg, pydantic or the services); `up` imports what it needs when it runs.

DEFAULT_VAR = Path("var/cluster")
DEFAULT_PORT_BASE = 9080
DEFAULT_DB_PREFIX = "qrpay_cluster"
STOP_TIMEOUT = 20.0
# Behind nginx: the two balanced services (two instances each) and the public api-proxy.
BALANCED = ("iiko-integration", "payments-eda")
SINGLE = ("eda", "transactions", "cardstorage", "cashback", "api-proxy")
WORKER = "worker-payments-eda"
WORKER_READY = "worker: consuming"
WORKER_CONCURRENCY = 16
READY_TIMEOUT = 60.0
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
    def pids(self) -> Path:
        return self.var / "pids.json"

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
    try:
        data = json.loads(layout.pids.read_text())
    except (OSError, ValueError):
        return []
    return list(data.get("processes", []))


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_processes(pids: list[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM, wait up to ``timeout``, SIGKILL the rest; returns the pids that were killed."""
    for pid in pids:
        if alive(pid):
            signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    killed = [pid for pid in pids if alive(pid)]
    for pid in killed:
        signal_group(pid, signal.SIGKILL)
    return killed


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
    from qrpay.kernel.config import parse_config

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
    from qrpay.kernel.service import SERVICE_MODULES

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


def up(layout: Layout, db_prefix: str, overrides: list[str] | None = None) -> int:
    import psycopg

    live = [entry for entry in read_pids(layout) if alive(int(str(entry["pid"])))]
    if live:
        say(
            f"qrpay cluster: already running ({len(live)} live processes in {layout.pids}); "
            "stop it first with `make cluster-stop`"
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
    commands = [
        (name, local.serve_args(service, port), port) for name, service, port in layout.instances
    ]
    commands.append((WORKER, local.worker_args(WORKER_CONCURRENCY), 0))
    processes = launch(layout, env, commands)
    try:
        layout.nginx_conf.write_text(nginx_config(layout))
        started = subprocess.run(
            nginx_args(nginx, layout), capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            raise RuntimeError(f"nginx did not start: {started.stderr.strip()}")
        wait_everything(layout, processes)
    except (RuntimeError, OSError) as exc:
        say(f"qrpay cluster: {exc}; logs in {layout.logs}; stopping what started")
        down(layout, quiet=True)
        return 1
    print_banner(layout, processes)
    return 0


def launch(
    layout: Layout, env: dict[str, str], commands: list[tuple[str, list[str], int]]
) -> list[local.Process]:
    """Starts (name, args, port) detached; pids.json records what `restart NAME` needs."""
    processes: list[local.Process] = []
    try:
        for name, args, port in commands:
            own = process_env(layout, env, args)
            processes.append(local.start(name, args, port, own, layout.logs))
    finally:
        # Written whatever fails, so that `down` finds every process that started.
        write_pids(
            layout,
            [
                {
                    "name": p.name,
                    "pid": p.popen.pid,
                    "port": p.port,
                    "args": args,
                    "env": process_env(layout, env, args),
                }
                for p, (_, args, _) in zip(processes, commands, strict=False)
            ],
        )
    return processes


def wait_everything(layout: Layout, processes: list[local.Process]) -> None:
    """Every service ready, nginx answering, the worker consuming; then the demo cards."""
    for process in processes:
        if process.port:
            local.wait_ready(process, path="/ready", timeout=READY_TIMEOUT)
    for port in layout.nginx_ports.values():
        local.wait_ready(None, f"{layout.url(port)}/ready", timeout=READY_TIMEOUT)
    worker = next(p for p in processes if p.name == WORKER)
    wait_consuming(layout, worker.name, worker.popen, offset=0)
    bind_demo_cards(layout)


def wait_consuming(
    layout: Layout, name: str, popen: subprocess.Popen[bytes], *, offset: int, timeout: float = 30
) -> None:
    """Wait until a worker logs that it consumes, after byte ``offset`` of its log."""
    log = layout.logs / f"{name}.log"
    deadline = time.monotonic() + timeout
    while WORKER_READY.encode() not in log.read_bytes()[offset:]:
        # Our own child: poll() is exact, where /proc's cmdline reads empty mid-exec.
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited before it started consuming")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start consuming within {timeout:.0f}s")
        time.sleep(0.2)


def print_banner(layout: Layout, processes: list[local.Process]) -> None:
    nginx = layout.nginx_ports
    bin_dir = Path(local.QRPAY).parent
    cashback = next(port for _, service, port in layout.instances if service == "cashback")
    say("qrpay cluster is up (PostgreSQL, nginx, `qrpay serve` + `qrpay worker`):")
    say(f"  api-proxy (guest app, payer page)  {layout.url(nginx['api-proxy'])}   via nginx")
    say(
        f"  iiko-integration (POS API), 2 inst. {layout.url(nginx['iiko-integration'])}   via nginx"
    )
    say(f"  payments-eda, 2 instances           {layout.url(nginx['payments-eda'])}   via nginx")
    for process in processes:
        where = layout.url(process.port) if process.port else "(queue worker)"
        say(f"    {process.name:22} pid {process.popen.pid:<8} {where}")
    say(f"  logs: {layout.logs}   pids: {layout.pids}")
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


def down(layout: Layout, *, quiet: bool = False) -> int:
    entries = read_pids(layout)
    pids = [int(str(entry["pid"])) for entry in entries]
    killed = stop_processes(pids)
    stopped_nginx = False
    pid = nginx_pid(layout)
    if pid is not None and alive(pid):
        nginx = nginx_binary()
        if nginx and layout.nginx_conf.exists():
            subprocess.run(
                [*nginx_args(nginx, layout), "-s", "quit"], capture_output=True, check=False
            )
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            signal_group(pid, signal.SIGKILL)
        stopped_nginx = True
    layout.pids.unlink(missing_ok=True)
    if not quiet:
        if not entries and not stopped_nginx:
            say(f"qrpay cluster: nothing to stop ({layout.pids} not found)")
        else:
            say(
                f"qrpay cluster stopped: {len(pids)} processes"
                + (f" ({len(killed)} killed after {STOP_TIMEOUT:.0f}s)" if killed else "")
                + (", nginx" if stopped_nginx else "")
            )
    return 0


def write_pids(layout: Layout, entries: list[dict[str, object]]) -> None:
    # Atomic: a concurrent reader (`down`, another `restart`) never sees half a file.
    partial = layout.pids.with_suffix(".json.tmp")
    partial.write_text(json.dumps({"processes": entries}, indent=2) + "\n")
    partial.replace(layout.pids)


@contextlib.contextmanager
def pids_lock(layout: Layout) -> Iterator[None]:
    """Serializes read-modify-write of pids.json between concurrent `restart`s."""
    with (layout.var / "pids.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def restart(layout: Layout, name: str) -> int:
    """Start one instance again as `up` started it (stopping it first if it still runs)."""
    entry = next((e for e in read_pids(layout) if e.get("name") == name), None)
    if entry is None:
        names = ", ".join(str(e.get("name")) for e in read_pids(layout))
        say(
            f"qrpay cluster: no instance {name!r} in {layout.pids}"
            + (f" (instances: {names})" if names else " (is the cluster up?)")
        )
        return 1
    stored_args, stored_env = entry.get("args"), entry.get("env")
    if not isinstance(stored_args, list) or not isinstance(stored_env, dict):
        say(f"qrpay cluster: {layout.pids} was written by an older `up`; restart the cluster")
        return 1
    args = [str(arg) for arg in stored_args]
    env = {str(key): str(value) for key, value in stored_env.items()}
    began = time.monotonic()
    old_pid = int(str(entry["pid"]))
    stopped = ""
    if alive(old_pid):
        killed = stop_processes([old_pid])
        stopped = " (was running: killed after 20s)" if killed else " (was running: stopped)"
    port = int(str(entry.get("port") or 0))
    if port and not wait_port_free(port, timeout=10):
        say(f"qrpay cluster: port {port} of {name} is still in use; not restarting it")
        return 1
    log = layout.logs / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    process = local.start(name, args, port, env, layout.logs, append=True)
    with pids_lock(layout):
        entries = read_pids(layout)
        for one in entries:
            if one.get("name") == name:
                one["pid"] = process.popen.pid
        write_pids(layout, entries)
    try:
        if port:
            local.wait_ready(process, path="/ready", timeout=READY_TIMEOUT)
        else:
            wait_consuming(layout, name, process.popen, offset=offset)
    except RuntimeError as exc:
        say(f"qrpay cluster: {exc}; log: {log}")
        return 1
    say(
        f"qrpay cluster: restarted {name}{stopped}: pid {process.popen.pid}, ready in "
        f"{time.monotonic() - began:.1f}s"
    )
    return 0


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
    parser.add_argument("command", choices=("up", "down", "restart"))
    parser.add_argument(
        "instance",
        nargs="?",
        help="restart: the instance to start again, a name from pids.json "
        "(payments-eda-1, eda, worker-payments-eda, ...)",
    )
    parser.add_argument("--var-dir", type=Path, default=DEFAULT_VAR)
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument(
        "--db-prefix", default=DEFAULT_DB_PREFIX, help="databases are <prefix>_<service>"
    )
    add_config_options(parser, admission="up: ", overrides="up: ")
    args = parser.parse_args(argv)
    layout = Layout(args.var_dir, args.port_base, args.admission)
    if args.command == "restart":
        if not args.instance:
            parser.error("restart needs the instance name")
        return restart(layout, args.instance)
    if args.instance:
        parser.error(f"{args.command} takes no instance name")
    if args.overrides and args.command != "up":
        parser.error("--set applies to up only")
    if args.command == "up":
        return up(layout, args.db_prefix, args.overrides)
    return down(layout)


if __name__ == "__main__":
    sys.exit(main())
