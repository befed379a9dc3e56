"""api-proxy sizes a long-poll's wait by payments-eda's own reading of ``wait_ms``."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qrpay.api_proxy.domain import long_poll_wait_ms
from qrpay.payments_eda.api import WaitParam

SPELLINGS = ["20000", "+20000", " 5", "5.0", "0", "30000", "30001", "-1", "soon", ""]


def _as_payments_eda_reads(value: str) -> int | None:
    """The wait payments-eda's own declaration of the parameter gives, None when it refuses."""
    app = FastAPI()

    @app.get("/")
    def read(wait_ms: WaitParam = 0) -> int:
        return wait_ms

    answer = TestClient(app).get("/", params={"wait_ms": value})
    return int(answer.json()) if answer.status_code == 200 else None


@pytest.mark.parametrize("value", SPELLINGS)
def test_every_spelling_is_read_as_payments_eda_reads_it(value: str) -> None:
    expected = _as_payments_eda_reads(value)
    assert long_poll_wait_ms([("order_id", "o1"), ("wait_ms", value)]) == (expected or 0)


def test_no_wait_ms_is_a_plain_read() -> None:
    assert long_poll_wait_ms([("order_id", "o1")]) == 0
