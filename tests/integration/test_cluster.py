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
    body = {
        "client_id": "rest-1",
        "internal_order_id": f"cluster-{uuid.uuid4().hex[:8]}",
        "bill": {
            "currency": "RUB",
            "amount": "450.00",
            "elements": [{"name": "B", "amount": "450"}],
        },
    }
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
