"""`python -m qrpay_tools.cluster up/down` (what `make cluster` runs): nginx, PostgreSQL, `qrpay serve`.

Skipped when nginx is not installed, unless QRPAY_REQUIRE_CLUSTER=1.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay_tools.cluster.run import Layout, alive
from qrpay_tools.ports import port_is_free
from tests.support.cluster import cluster_command, cluster_layout
from tests.support.processes import child_env, run

pytestmark = pytest.mark.postgres
DEV_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]


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


def test_cluster_up_balances_and_down_stops_everything(
    layout: tuple[Layout, list[str]],
) -> None:
    cluster, options = layout
    started = run(cluster_command("up", *options), env=child_env(), timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "qrpay cluster is up" in started.stdout

    again = run(cluster_command("up", *options), env=child_env(), timeout=60)
    assert again.returncode == 1, again.stdout
    assert "already running" in again.stdout, again.stdout

    entries = json.loads(cluster.pids.read_text())["processes"]
    pids = [int(entry["pid"]) for entry in entries]
    assert len(pids) == 10
    assert all(alive(pid) for pid in pids)

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

    stopped = run(cluster_command("down", *options), env=child_env(), timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not cluster.pids.exists()
    assert not any(alive(pid) for pid in pids)
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
