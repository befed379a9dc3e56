from __future__ import annotations

import json

import pytest

from qrpay_tools.pos_sim.client import connection_error_line, http_error_line
from qrpay_tools.pos_sim.errors import PosSimError, error_line


def test_connection_refused_names_the_service_and_the_fix() -> None:
    line = connection_error_line("http://127.0.0.1:8081", ConnectionRefusedError(111, "refused"))
    assert line == (
        "error: cannot reach iiko-integration at http://127.0.0.1:8081 (connection refused)"
        " — is `qrpay up` running?"
    )


def test_timeout_is_named() -> None:
    assert "(timed out)" in connection_error_line("http://x", TimeoutError())


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (401, {"code": "unauthorized", "message": "unknown key"}, "rejected the API key (401"),
        (403, {"code": "forbidden", "message": "no"}, "not allowed for restaurant 'rest-9' (403"),
        (
            409,
            {"code": "order_conflict", "message": "a payment\nis under way"},
            "409 (order_conflict: a payment is under way)",
        ),
        (
            503,
            {"code": "eda_unavailable", "message": "eda is down"},
            "503 (eda_unavailable: eda is down)",
        ),
    ],
)
def test_http_errors_are_one_line(status: int, body: dict[str, str], fragment: str) -> None:
    line = http_error_line(status, json.dumps(body).encode(), client_id="rest-9")
    assert fragment in line
    assert line.startswith("error: ")
    assert "\n" not in line
    assert "Traceback" not in line


def test_non_json_error_body_is_flattened() -> None:
    line = http_error_line(502, b"<html>\n<body>Bad gateway</body>\n</html>")
    assert "\n" not in line
    assert "502" in line


def test_error_line_flattens_and_prefixes_once() -> None:
    assert error_line("boom\n  at line 2") == "error: boom at line 2"
    assert error_line("error: already") == "error: already"
    assert PosSimError("x\ny").line() == "error: x y"
