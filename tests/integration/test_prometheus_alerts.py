"""deploy/prometheus's alerts on a real Prometheus scraping real qrpay processes.

The payer stack runs as `qrpay serve` processes on PostgreSQL with iiko-integration and a
`qrpay worker payments-eda --metrics-port`; Debian's Prometheus scrapes every /metrics
each second with the repository's rule files. A payment whose hold gets no answer from
the gateway (a ``sandbox-error-`` card) must page (QrpayGatewayOutcomesUnknown firing)
and show as overdue (QrpayPaymentsOverdue pending: its ``for`` is 5 minutes). Then every
query of the generated Grafana dashboard is evaluated there, and every metric it names is
one the processes export or a recording rule makes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from qrpay_tools import dashboard
from tests.plugins.cluster import running_faulty_cluster
from tests.support.payments_cluster import SERVED, USER, FaultyCluster
from tests.support.postgres import DatabaseFactory
from tests.support.processes import free_port
from tests.support.prometheus import PROMETHEUS_DIR, Prometheus, binary, running_prometheus
from tests.support.tickets import ticket_headers

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(400)]

BROKEN_CARD = "pg-card-broken"
# The sweep looks every sixth of it; the payment is overdue after it.
HOLD_WATCHDOG_SECONDS = 2


def configure(config: dict[str, Any]) -> None:
    # The first unknown outcome already passes the limit: the alert need not wait for 10.
    config["transactions"].setdefault("gateway", {})["unknown_alert_attempts"] = 1
    config["payments"]["hold_watchdog_seconds"] = HOLD_WATCHDOG_SECONDS


@pytest.fixture
async def stack(tmp_path: Path, pg_database: DatabaseFactory) -> AsyncIterator[FaultyCluster]:
    binary("prometheus")  # skip (or fail in CI) before starting anything
    async for instance in running_faulty_cluster(tmp_path, pg_database, configure=configure):
        yield instance


def alert_states(prometheus: Prometheus, name: str, **labels: str) -> set[str]:
    return {
        alert["state"]
        for alert in prometheus.alerts()
        if alert["labels"]["alertname"] == name
        and all(alert["labels"].get(key) == value for key, value in labels.items())
    }


def rule_of(prometheus: Prometheus, name: str) -> dict[str, Any]:
    for group in prometheus.api("rules")["groups"]:
        for rule in group["rules"]:
            if rule["name"] == name:
                return dict(rule)
    raise AssertionError(f"Prometheus has no rule {name}")


def evaluated_quiet(prometheus: Prometheus, name: str) -> bool:
    rule = rule_of(prometheus, name)
    return bool(
        rule["health"] == "ok"
        and rule["state"] == "inactive"
        and not rule["lastEvaluation"].startswith("0001")
    )


def known_metric_names(prometheus: Prometheus) -> set[str]:
    """Every name a query may use: what the targets export (also the counters with labels
    not counted yet: their metadata comes with the scrape), histogram series, and the
    recording rules' names."""
    names = {"up"}
    for name, entries in prometheus.api("metadata").items():
        names.add(name)
        kinds = {entry["type"] for entry in entries}
        if "histogram" in kinds:
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        if "counter" in kinds:  # named without _total when scraped as OpenMetrics
            names.add(f"{name.removesuffix('_total')}_total")
    recording = yaml.safe_load((PROMETHEUS_DIR / "recording.yml").read_text())
    names.update(rule["record"] for group in recording["groups"] for rule in group["rules"])
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(?:[a-z_]+:)?qrpay_\w+(?::\w+)?|\bup\b", expr))


async def test_a_payment_stuck_at_the_gateway_pages_and_the_dashboard_queries_evaluate(
    stack: FaultyCluster, tmp_path: Path
) -> None:
    stack.serve("iiko-integration", stack.ports["iiko-integration"])
    worker_metrics = free_port()
    stack.worker("metrics", metrics_port=worker_metrics)
    targets = {
        f"qrpay-{name}": [f"127.0.0.1:{stack.ports[name]}"]
        for name in (*SERVED, "iiko-integration")
    }
    targets["qrpay-payments-eda-worker"] = [f"127.0.0.1:{worker_metrics}"]

    with running_prometheus(tmp_path, targets) as prometheus:
        prometheus.wait_for(
            "every target scraped",
            lambda: list(prometheus.targets_up().values()) == ["up"] * len(targets),
        )
        # Before the fault: the rule was evaluated on the scraped data and is quiet.
        prometheus.wait_for(
            "QrpayGatewayOutcomesUnknown evaluated and quiet",
            lambda: evaluated_quiet(prometheus, "QrpayGatewayOutcomesUnknown"),
        )
        assert alert_states(prometheus, "QrpayPaymentsOverdue") == set()

        # A payment whose hold the gateway never answers.
        stack.bind_card(BROKEN_CARD, "sandbox-error-0119")
        order_id, signature = stack.create_order()
        body = stack.pay_body(order_id, signature)
        body["payment_method"]["id"] = BROKEN_CARD
        answer = httpx.post(
            f"{stack.url('payments-eda')}/4.0/payments/v1/orders",
            json=body,
            headers={"X-Yandex-UID": USER, **ticket_headers("api-proxy", to="payments-eda")},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

        prometheus.wait_for(
            "QrpayGatewayOutcomesUnknown firing for the hold",
            lambda: (
                "firing"
                in alert_states(
                    prometheus, "QrpayGatewayOutcomesUnknown", kind="hold", job="qrpay-transactions"
                )
            ),
        )
        prometheus.wait_for(
            "QrpayPaymentsOverdue pending",
            lambda: alert_states(prometheus, "QrpayPaymentsOverdue") & {"pending", "firing"},
        )
        assert stack.order_status(order_id) == "PAYMENT_IN_PROGRESS"

        for expr in dashboard.queries():
            prometheus.api("query", query=expr)  # a 200 with status success, or it fails
        # Metadata arrives with scrapes: polled (once seen missing in a loaded full run).
        named = set().union(*(metric_names_in(expr) for expr in dashboard.queries()))
        prometheus.wait_for(
            "every metric the dashboard names exported",
            lambda: named <= known_metric_names(prometheus),
        )
