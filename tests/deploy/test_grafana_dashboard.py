"""deploy/grafana/qrpay.json is what tools/qrpay_tools/dashboard.py generates (its queries
are evaluated on a real Prometheus in tests/integration/test_prometheus_alerts.py)."""

from __future__ import annotations

import json

from qrpay_tools import dashboard
from tests.support.prometheus import PROMETHEUS_DIR

COMMITTED = PROMETHEUS_DIR.parent / "grafana" / "qrpay.json"


def test_the_committed_dashboard_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == dashboard.render(), (
        "deploy/grafana/qrpay.json is stale: run "
        "`.venv/bin/python -m qrpay_tools.dashboard > deploy/grafana/qrpay.json`"
    )


def test_every_panel_queries_the_chosen_prometheus() -> None:
    board = json.loads(COMMITTED.read_text())
    graphs = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len(graphs) == sum(len(row) for row in dashboard.ROWS.values())
    targets = [target for panel in graphs for target in panel["targets"]]
    assert [target["expr"] for target in targets] == dashboard.queries()
    assert {target["datasource"]["uid"] for target in targets} == {"${datasource}"}
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
