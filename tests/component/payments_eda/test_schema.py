"""Property-based conformance of payments-eda's OpenAPI document (schemathesis).

Schemathesis drives the app synchronously from its own event loop thread, so the
permissive fakes of eda, cardstorage and transactions run on a loop of their own in
another thread. Every generated order id gets a valid signature, so the success
paths are reached too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from qrpay.kernel.queue import TaskQueue
from qrpay.runner.context import build_app
from tests.support.component.payments_eda import config_for
from tests.support.fuzz import (
    EXCLUDED_CHECKS,
    Fakes,
    background_loop,
    running_fakes,
    schema_settings,
    sign_payer_case,
    with_node_id,
)
from tests.support.services import make_context


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with background_loop() as background, running_fakes(background) as fakes:
        yield fakes
    # The success paths were reached, so their answers were checked against the schema too.
    assert fakes.hits["get_order"] > 0
    assert fakes.hits["hold"] > 0
    assert fakes.hits["list_cards"] > 0


@dataclass
class _Base:
    base_url: str


@pytest.fixture
def payments_schema(fakes: Fakes, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    with_node_id(request)
    config = config_for(_Base(fakes.base_url))  # type: ignore[arg-type]
    ctx = make_context("payments-eda", tmp_path, config=config, queue=TaskQueue())
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(ctx))


schema = schemathesis.pytest.from_fixture("payments_schema")


@schema.parametrize()
@schema_settings(40)
def test_api_conforms_to_its_schema(case: Any) -> None:
    sign_payer_case(case)
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)
