"""`python -m qrpay.cluster up|down`: a production-like cluster on this machine.

`up` creates (or reuses) one PostgreSQL database per service with a database and
one for the durable queue, writes config and secdist under the var directory, runs
`qrpay db upgrade`, starts with `qrpay serve` two instances of iiko-integration and
of payments-eda and one of every other service, one `qrpay worker payments-eda`,
all detached (logs in <var>/logs, pids in <var>/pids.json), and puts Debian's nginx
(installed if missing) in front: api-proxy on the port base, the iiko-integration
load balancer on base+1, the payments-eda one on base+2; the services listen on
base+20 and up. `down` stops them gracefully (SIGTERM, SIGKILL after 20 s) and nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import yaml

from qrpay.bench import harness
from qrpay.runner.context import has_database

DEFAULT_VAR = Path("var/cluster")
DEFAULT_PORT_BASE = 9080
DEFAULT_DB_PREFIX = "qrpay_cluster"
STOP_TIMEOUT = 20.0
# Behind nginx: the two balanced services (two instances each) and the public api-proxy.
BALANCED = ("iiko-integration", "payments-eda")
SINGLE = ("eda", "transactions", "cardstorage", "cashback", "api-proxy")


@dataclass(frozen=True)
class Layout:
    var: Path
    port_base: int

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


def say(line: str) -> None:
    print(line, flush=True)


# -- nginx ---------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )


def ensure_nginx() -> str:
    found = nginx_binary()
    if found:
        return found
    say("nginx is missing: installing Debian's package (apt-get install -y nginx) ...")
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx"], check=False, capture_output=True
        )
        found = nginx_binary()
        if found:
            return found
    raise RuntimeError("nginx is not installed and `apt-get install -y nginx` did not install it")


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
            f"        location / {{\n"
            f"            proxy_pass http://{name};\n"
            f"            proxy_http_version 1.1;\n"
            f'            proxy_set_header Connection "";\n'
            f"            proxy_set_header Host $http_host;\n"
            f"            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            f"            proxy_read_timeout 30s;\n"
            f"        }}\n"
            f"    }}\n"
        )
    return (
        "# Written by `python -m qrpay.cluster up`; rewritten on every start.\n"
        "worker_processes 1;\n"
        f"pid {var}/nginx.pid;\n"
        f"error_log {var}/logs/nginx-error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
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


def ensure_database(name: str) -> str:
    with psycopg.connect(harness.PG_ADMIN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    host_part = harness.PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{host_part}/{name}"


def configure(layout: Layout, db_prefix: str) -> dict[str, str]:
    services = {service for _, service, _ in layout.instances}
    databases = {
        service: ensure_database(f"{db_prefix}_{service.replace('-', '_')}")
        for service in sorted(services)
        if has_database(service)
    }
    queue = ensure_database(f"{db_prefix}_queue")
    # Callers reach the balanced services and api-proxy through nginx, the rest directly.
    ports = {service: port for _, service, port in layout.instances} | layout.nginx_ports
    (layout.var / "var").mkdir(parents=True, exist_ok=True)
    env = harness.write_config(layout.var.resolve(), ports, databases)
    config = yaml.safe_load((layout.var / "config.yaml").read_text())
    config["deeplink"]["base"] = f"{layout.url(layout.nginx_ports['api-proxy'])}/go-pay/orders"
    (layout.var / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    secdist = yaml.safe_load((layout.var / "secdist.yaml").read_text())
    secdist["queue_database"] = queue
    (layout.var / "secdist.yaml").write_text(yaml.safe_dump(secdist))
    env["QRPAY_LOG_LEVEL"] = "INFO"
    return env


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


async def bind_demo_cards(layout: Layout) -> None:
    demo = yaml.safe_load((layout.var / "config.yaml").read_text()).get("demo") or {}
    port = next(port for _, service, port in layout.instances if service == "cardstorage")
    async with aiohttp.ClientSession() as session:
        for card in demo.get("cards", []):
            body = {
                "user_id": demo["user_id"],
                "token": card["token"],
                "system": card["system"],
                "last4": card["last4"],
                "expiry_month": card["expiry_month"],
                "expiry_year": card["expiry_year"],
            }
            url = f"{layout.url(port)}/v1/payment-methods/{card['id']}"
            async with session.put(url, json=body) as answer:
                answer.raise_for_status()


# -- commands --------------------------------------------------------------------------


def up(layout: Layout, db_prefix: str) -> int:
    live = [entry for entry in read_pids(layout) if alive(int(str(entry["pid"])))]
    if live:
        say(
            f"qrpay cluster: already running ({len(live)} live processes in {layout.pids}); "
            "stop it first with `make cluster-stop`"
        )
        return 1
    ports = list(layout.nginx_ports.values()) + [port for _, _, port in layout.instances]
    busy = [port for port in ports if not port_free(port)]
    if busy:
        say(f"qrpay cluster: ports already in use: {', '.join(map(str, busy))}")
        return 1
    nginx = ensure_nginx()
    layout.logs.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (layout.var / "nginx" / sub).mkdir(parents=True, exist_ok=True)
    try:
        env = configure(layout, db_prefix)
    except psycopg.Error as exc:
        say(f"qrpay cluster: PostgreSQL at {harness.PG_ADMIN}: {exc}".strip())
        return 1
    migrated = subprocess.run(
        [harness.QRPAY, "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if migrated.returncode != 0:
        say(f"qrpay cluster: `qrpay db upgrade` failed:\n{migrated.stdout}{migrated.stderr}")
        return 1

    processes = [
        harness.start(
            name,
            [harness.QRPAY, "serve", service, "--host", "127.0.0.1", "--port", str(port)],
            port,
            env,
            layout.logs,
        )
        for name, service, port in layout.instances
    ]
    worker = harness.start(
        "worker-payments-eda",
        [harness.QRPAY, "worker", "payments-eda", "--concurrency", "16"],
        0,
        env,
        layout.logs,
    )
    processes.append(worker)
    entries: list[dict[str, object]] = [
        {"name": p.name, "pid": p.popen.pid, "port": p.port} for p in processes
    ]
    write_pids(layout, entries)
    try:
        layout.nginx_conf.write_text(nginx_config(layout))
        started = subprocess.run(
            nginx_args(nginx, layout), capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            raise RuntimeError(f"nginx did not start: {started.stderr.strip()}")
        asyncio.run(wait_everything(layout, processes))
    except (RuntimeError, aiohttp.ClientError, OSError) as exc:
        say(f"qrpay cluster: {exc}; logs in {layout.logs}; stopping what started")
        down(layout, quiet=True)
        return 1
    print_banner(layout, processes)
    return 0


async def wait_everything(layout: Layout, processes: list[harness.Process]) -> None:
    for process in processes:
        if process.port:
            await harness.wait_ready(process, "/ready", timeout=60)
    for port in layout.nginx_ports.values():
        await wait_http(f"{layout.url(port)}/ready")
    worker = processes[-1]
    log = layout.logs / f"{worker.name}.log"
    deadline = time.monotonic() + 30
    while "worker: consuming" not in log.read_text(errors="replace"):
        if worker.popen.poll() is not None:
            raise RuntimeError(f"{worker.name} exited with {worker.popen.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.name} did not start consuming within 30s")
        await asyncio.sleep(0.2)
    await bind_demo_cards(layout)


def print_banner(layout: Layout, processes: list[harness.Process]) -> None:
    nginx = layout.nginx_ports
    bin_dir = Path(harness.QRPAY).parent
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
        f"  {bin_dir}/qrpay pos-sim --url {layout.url(nginx['iiko-integration'])} "
        '--client-id rest-1 --item "Borscht=450" --item "Pelmeni=650"'
    )
    say(
        f"  {bin_dir}/qrpay guest '<the Link: line>' --api {layout.url(nginx['payments-eda'])} "
        f"--cashback-url {layout.url(cashback)} --card card-ok"
    )
    say("Stop it with `make cluster-stop` (python -m qrpay.cluster down).")


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
    layout.pids.write_text(json.dumps({"processes": entries}, indent=2) + "\n")


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qrpay.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--var-dir", type=Path, default=DEFAULT_VAR)
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument(
        "--db-prefix", default=DEFAULT_DB_PREFIX, help="databases are <prefix>_<service>"
    )
    args = parser.parse_args(argv)
    layout = Layout(args.var_dir, args.port_base)
    if args.command == "up":
        return up(layout, args.db_prefix)
    return down(layout)


if __name__ == "__main__":
    sys.exit(main())
