"""Property-based conformance of iiko-integration's OpenAPI document (schemathesis).

Schemathesis drives the app synchronously from its own event loop thread, so
the fake eda runs on a loop of its own in another thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web

from qrpay.runner.context import build_app
from tests.support.component.iiko_integration import HEADERS, eda_order
from tests.support.fuzz import EXCLUDED_CHECKS, background_loop, lazy_schema, schema_settings
from tests.support.mockserver import MockServer, error_response
from tests.support.services import dev_config, make_context, point_services_at


async def _create(request: web.Request) -> dict[str, Any]:
    body = await request.json()
    return {"order": eda_order(body), "outcome": "created"}


@pytest.fixture
def fake_eda() -> Iterator[MockServer]:
    """A permissive eda: every create succeeds, no order exists."""
    server = MockServer()
    server.handler("/v1/orders")(_create)
    server.json_handler("/v1/orders/statuses", {"orders": []})
    # The POS long-poll: no follower runs here, so eda's own long-poll answers it.
    page = {"changes": [], "cursor": "0:", "more": False}
    server.json_handler("/v1/orders/changes", page, method="GET")
    server.json_handler("/v1/orders/changes/tail", {"cursor": "0:"}, method="GET")
    # Reads and closes of one order (the split-bill routes): no order exists.
    server.fallback = lambda _request: error_response(404, "order_not_found")
    with background_loop() as background:
        background.run(server.start())
        yield server
        background.run(server.stop())
    assert not server.unmocked, server.unmocked
    # The schema's examples reach eda, so the success answers were checked too.
    assert server.requests_by_path["/v1/orders"] > 0
    assert server.requests_by_path["/v1/orders/statuses"] > 0


@pytest.fixture
def iiko_schema(fake_eda: MockServer, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    config = point_services_at(dev_config(), fake_eda.base_url, "eda")
    return lazy_schema(
        request, build_app(make_context("iiko-integration", tmp_path, config=config))
    )


schema = schemathesis.pytest.from_fixture("iiko_schema")


@schema.parametrize()
@schema_settings(30)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(headers=HEADERS, excluded_checks=EXCLUDED_CHECKS)
