"""qrpay's Grafana dashboard, built with grafana-foundation-sdk.

``python -m qrpay_tools.dashboard`` prints it; deploy/grafana/qrpay.json is that output
(a test keeps the two equal, and evaluates every query on a real Prometheus scraping
qrpay). The queries read deploy/prometheus's recording rules where one exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

UID = "qrpay-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Graph:
    title: str
    unit: str
    queries: tuple[Query, ...]
    # A single number (now) rather than a graph over time.
    single: bool = False


ROWS: dict[str, tuple[Graph, ...]] = {
    "Product (SPEC section 8)": (
        Graph(
            "Orders created with a QR code",
            "reqps",
            (Query("client_id:qrpay_orders_created_with_qr:rate5m", "{{client_id}}"),),
        ),
        Graph(
            "Orders viewed by QR code",
            "reqps",
            (Query("client_id:qrpay_orders_viewed_by_qr:rate5m", "{{client_id}}"),),
        ),
        Graph(
            "Orders paid by QR code",
            "reqps",
            (Query("client_id:qrpay_orders_paid_by_qr:rate5m", "{{client_id}}"),),
        ),
        Graph(
            "Paid per viewed (1 h)",
            "percentunit",
            (Query("client_id:qrpay_orders_paid_per_viewed_by_qr:ratio_rate1h", "{{client_id}}"),),
        ),
        Graph("Open orders", "short", (Query("job:qrpay_open_orders:max", "open"),), single=True),
        Graph(
            "Problem orders per hour",
            "short",
            (
                Query("reason:qrpay_problem_orders:increase1h", "{{reason}}"),
                Query("job:qrpay_cashback_problems:increase1h", "cashback given up"),
            ),
        ),
    ),
    "Payments in flight": (
        Graph(
            "Payments overdue",
            "short",
            (Query("max(qrpay_payments_overdue)", "overdue"),),
            single=True,
        ),
        Graph(
            "Gateway outcomes unknown past the limit (1 h)",
            "short",
            (
                Query(
                    "sum by (kind) (increase(qrpay_transactions_unknown_outcomes_total[1h]))",
                    "{{kind}}",
                ),
            ),
        ),
        Graph(
            "Queue: waiting and failed tasks",
            "short",
            (
                Query("max by (queue) (qrpay_queue_depth)", "{{queue}} waiting"),
                Query("max by (queue) (qrpay_queue_failed_tasks)", "{{queue}} failed"),
            ),
        ),
        Graph(
            "Operations pending at the gateway",
            "short",
            (Query("max(qrpay_transactions_pending_operations)", "pending"),),
        ),
    ),
    "Services": (
        Graph(
            "Requests per second",
            "reqps",
            (Query("job:qrpay_http_requests:rate5m", "{{job}}"),),
        ),
        Graph(
            "5xx ratio",
            "percentunit",
            (Query("job:qrpay_http_requests_5xx:ratio_rate5m", "{{job}}"),),
        ),
        Graph(
            "p99 latency by handler",
            "s",
            (Query("job_handler:qrpay_http_request_seconds:p99_rate5m", "{{job}} {{handler}}"),),
        ),
        Graph(
            "p99 latency of calls to other services",
            "s",
            (
                Query(
                    "job_downstream:qrpay_downstream_request_seconds:p99_rate5m",
                    "{{job}} → {{downstream}}",
                ),
            ),
        ),
        Graph(
            "Overload refusals per second",
            "reqps",
            (
                Query(
                    "sum by (job) (rate(qrpay_http_overload_refusals_total[5m]))",
                    "{{job}}",
                ),
            ),
        ),
        Graph(
            "Feed lag of iiko-integration (and its limit)",
            "s",
            (
                Query("time() - qrpay_feed_current_as_of_seconds", "{{instance}}"),
                Query("max(qrpay_feed_max_lag_seconds)", "max_lag_ms"),
            ),
        ),
        Graph("Instances up", "short", (Query('sum by (job) (up{job=~"qrpay-.+"})', "{{job}}"),)),
    ),
}


def queries() -> list[str]:
    """Every expression of the dashboard, in order."""
    return [query.expr for graph in _graphs() for query in graph.queries]


def _graphs() -> list[Graph]:
    return [graph for graphs in ROWS.values() for graph in graphs]


def _targets(graph: Graph) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(chr(ord("A") + number))
        .datasource(DATASOURCE)
        for number, query in enumerate(graph.queries)
    ]


def _panel(graph: Graph, panel_id: int) -> stat.Panel | timeseries.Panel:
    panel: stat.Panel | timeseries.Panel = stat.Panel() if graph.single else timeseries.Panel()
    panel.id(panel_id).title(graph.title).unit(graph.unit).datasource(DATASOURCE)
    panel.height(8).span(8)
    for target in _targets(graph):
        panel.with_target(target)
    return panel


def build() -> dict[str, Any]:
    board = (
        dashboard.Dashboard("qrpay")
        .uid(UID)
        .tags(["qrpay", "generated"])
        .description("Generated by tools/qrpay_tools/dashboard.py: edit that, not this JSON.")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
    )
    # Ids of their own: Grafana links to a panel by its id.
    panel_id = 0
    for title, graphs in ROWS.items():
        panel_id += 1
        board.with_row(dashboard.Row(title).id(panel_id))
        for graph in graphs:
            panel_id += 1
            board.with_panel(_panel(graph, panel_id))
    encoded: dict[str, Any] = json.loads(JSONEncoder().encode(board.build()))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
