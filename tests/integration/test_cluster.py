"""`python -m qrpay_tools.cluster up/down` (what `make cluster` runs): nginx, PostgreSQL,
`qrpay serve` and the worker under supervisord.

One cluster for the whole test (starting one takes long on a loaded machine): it balances,
supervisorctl shows it, a SIGKILLed payments-eda instance is started again by supervisord
while guests pay (every payment ends PAYED exactly once), and `down` stops everything.
Skipped when nginx is not installed, unless QRPAY_REQUIRE_CLUSTER=1.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay_tools.cluster import supervised
from qrpay_tools.cluster.run import Layout, alive, nginx_pid, read_pids, wait_restarted
from qrpay_tools.ports import port_is_free
from tests.support.cluster import cluster_command, cluster_layout
from tests.support.kill_chaos import (
    CONVERGE_TIMEOUT,
    Databases,
    Guests,
    Stats,
    converge,
    log_tails,
    pid_of,
    queue_jobs,
)
from tests.support.processes import child_env, run

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]
DEV_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]
PAYMENTS = 6  # guests paying while payments-eda-1 is killed: a few, all at once
# A guest here keeps tapping until the order is PAYED: every payment must end paid, however
# slow the machine. An attempt that stalls ends within the hold watchdog (30 s), so a guest
# that has seen no end in POLL_FOR seconds after a tap waits on something broken.
TAPS = 10
POLL_FOR = 120.0
KILLED = "payments-eda-1"


@pytest.fixture
def layout(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Layout, list[str]]]:
    with cluster_layout(tmp_path, "cluster") as found:
        yield found


def new_order() -> dict[str, object]:
    return {
        "client_id": "rest-1",
        "internal_order_id": f"cluster-{uuid.uuid4().hex[:8]}",
        "bill": {
            "currency": "RUB",
            "amount": "450.00",
            "elements": [{"name": "B", "amount": "450"}],
        },
    }


def handled(metrics: str, handler: str) -> float:
    pattern = rf'qrpay_http_requests_total\{{[^}}]*handler="{re.escape(handler)}"[^}}]*\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, metrics))


def check_balancing(cluster: Layout) -> None:
    pos = cluster.url(cluster.nginx_ports["iiko-integration"])
    headers = {"X-API-Key": DEV_KEY}
    body = new_order()
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{pos}/orders", json=body, headers=headers)
        assert created.status_code == 200, created.text
        order_id = created.json()["order_id"]
        for _ in range(20):
            listed = client.post(
                f"{pos}/orders/list",
                json={"client_id": "rest-1", "orders": [order_id]},
                headers=headers,
            )
            assert listed.status_code == 200, listed.text
        per_instance = [
            handled(client.get(f"{cluster.url(port)}/metrics").text, "/orders/list")
            for _, service, port in cluster.instances
            if service == "iiko-integration"
        ]
    assert sum(per_instance) == 20, per_instance
    assert all(count > 0 for count in per_instance), per_instance


async def kill_while_paying(cluster: Layout) -> None:
    """SIGKILL payments-eda-1 once pay requests are in flight; supervisord starts it again
    and every payment ends PAYED, with one hold, one clear and one accrual."""
    dbs = Databases(cluster)
    try:
        stats = Stats()
        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0)) as client:
            guests = Guests(
                client,
                cluster,
                stats,
                seed=uuid.uuid4().int % 10**9,
                orders=PAYMENTS,
                taps=TAPS,
                poll_for=POLL_FOR,
            )
            paying = asyncio.create_task(guests.all())
            deadline = time.monotonic() + 60
            while stats.pays_in_flight == 0 and not paying.done():
                assert time.monotonic() < deadline, "no pay request went out within 60 s"
                await asyncio.sleep(0.01)
            old_pid = pid_of(cluster, KILLED)
            os.killpg(old_pid, signal.SIGKILL)
            in_flight = stats.pays_in_flight
            new_pid = await asyncio.to_thread(wait_restarted, cluster, KILLED, old_pid)
            await paying
        assert new_pid != old_pid
        assert alive(new_pid)
        assert not alive(old_pid)
        found, left, _ = await converge(dbs, guests.order_ids)
        context = f"\n{log_tails(cluster, (KILLED, 'payments-eda-2', 'worker-payments-eda'))}"
        assert found == [], f"violations: {found}{context}"
        assert left == [], f"tasks not finished in {CONVERGE_TIMEOUT:.0f}s: {left}{context}"
        assert queue_jobs(dbs, "failed") == []
        statuses = dbs.sql("eda", "SELECT status FROM orders WHERE id = ANY(%s)", guests.order_ids)
        assert [status for (status,) in statuses] == ["PAYED"] * PAYMENTS, (
            f"{statuses}; guests: {dict(stats.outcomes)}, tap errors {dict(stats.tap_errors)}"
            f"{context}"
        )
        print(
            f"\nkilled {KILLED} with {in_flight} pay requests in flight; guests:"
            f" {dict(stats.outcomes)}, tap errors {dict(stats.tap_errors)}"
        )
    finally:
        dbs.close()


async def test_cluster_under_supervisord_balances_survives_a_sigkill_and_stops(
    layout: tuple[Layout, list[str]],
) -> None:
    cluster, options = layout
    started = await asyncio.to_thread(
        run, cluster_command("up", *options), env=child_env(), timeout=300
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "qrpay cluster is up" in started.stdout

    again = run(cluster_command("up", *options), env=child_env(), timeout=60)
    assert again.returncode == 1, again.stdout
    assert "already running" in again.stdout, again.stdout

    entries = read_pids(cluster)
    pids = [int(str(entry["pid"])) for entry in entries]
    assert len(pids) == 10
    assert all(alive(pid) for pid in pids)
    nginx = nginx_pid(cluster)
    assert nginx is not None
    assert alive(nginx)

    status = run(supervised.supervisorctl_args(cluster.var, "status"), timeout=30)
    running = re.findall(r"^(\S+)\s+RUNNING\s", status.stdout, re.MULTILINE)
    assert sorted(running) == sorted([*(str(e["name"]) for e in entries), "nginx"]), status.stdout

    check_balancing(cluster)
    await kill_while_paying(cluster)

    supervisord = supervised.supervisord_pid(cluster.var)
    pids = [int(str(entry["pid"])) for entry in read_pids(cluster)]
    stopped = run(cluster_command("down", *options), env=child_env(), timeout=90)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    print(stopped.stdout)
    # SIGTERM first: each service went through uvicorn's graceful shutdown, the worker
    # through its own (how long the exit then takes is the machine's load).
    for name, _, _ in cluster.instances:
        log = (cluster.logs / f"{name}.log").read_text(errors="replace")
        assert "Waiting for application shutdown." in log, f"{name}: {log[-2000:]}"
    worker_log = (cluster.logs / "worker-payments-eda.log").read_text(errors="replace")
    assert '"graceful": true' in worker_log, worker_log[-2000:]
    assert not any(alive(pid) for pid in [*pids, nginx])
    assert supervisord is not None
    with pytest.raises(ProcessLookupError):
        os.kill(supervisord, 0)
    ports = list(cluster.nginx_ports.values()) + [port for _, _, port in cluster.instances]
    assert all(port_is_free(port) for port in ports), [p for p in ports if not port_is_free(p)]


# A client of the cluster from another loopback address than nginx's and the monitoring's
# (127.0.0.1): to nginx it is an outside client, which http.internal_networks leaves out.
OUTSIDE = "127.0.0.5"


def test_a_clients_forwarded_headers_open_nothing_through_nginx(
    layout: tuple[Layout, list[str]],
) -> None:
    """Issue 20: `Forwarded: for=127.0.0.1` (or X-Forwarded-For) from a client made it
    internal behind nginx, and each made-up address a new rate-limit bucket."""
    cluster, options = layout
    settings = [
        "--set",
        'http.internal_networks=["127.0.0.1/32"]',
        "--set",
        "limits.client_address={per_second: 0.001, burst: 3}",
    ]
    started = run(cluster_command("up", *options, *settings), env=child_env(), timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    api = cluster.url(cluster.nginx_ports["api-proxy"])
    pos = cluster.url(cluster.nginx_ports["iiko-integration"])
    outside = httpx.Client(transport=httpx.HTTPTransport(local_address=OUTSIDE), timeout=10)
    tricks = [
        {"Forwarded": "for=127.0.0.1"},
        {"Forwarded": 'for="127.0.0.1"', "X-Forwarded-For": "127.0.0.1"},
        {"X-Forwarded-For": "127.0.0.1"},
    ]
    with outside, httpx.Client(timeout=10) as monitoring:
        for base in (api, pos):
            for trick in tricks:
                answer = outside.get(f"{base}/metrics", headers=trick)
                assert answer.status_code == 404, (base, trick, answer.text)
        # Nothing else changed: the monitoring (127.0.0.1) reads every instance's /metrics.
        for _, service, port in cluster.instances:
            if service in ("api-proxy", "iiko-integration"):
                assert monitoring.get(f"{cluster.url(port)}/metrics").status_code == 200, service
        # A normal browser: the payer page, three times (the bucket's burst), then refused
        # whatever address it claims: one client, one bucket.
        pages = [
            outside.get(f"{api}/go-pay/orders", headers={"Forwarded": f"for=127.0.0.{i}"})
            for i in range(10, 14)
        ]
        assert [page.status_code for page in pages] == [200, 200, 200, 429], pages
        assert "text/html" in pages[0].headers["content-type"]
        # A normal POS, from outside: creates and lists an order through nginx.
        headers = {"X-API-Key": DEV_KEY}
        created = outside.post(f"{pos}/orders", json=new_order(), headers=headers)
        assert created.status_code == 200, created.text
        order_id = created.json()["order_id"]
        listed = outside.post(
            f"{pos}/orders/list",
            json={"client_id": "rest-1", "orders": [order_id]},
            headers=headers,
        )
        assert listed.status_code == 200, listed.text
        assert order_id in listed.text
