"""`qrpay guest` as a command: exit codes and one-line errors, no services needed."""

from __future__ import annotations

from typer.testing import CliRunner

from qrpay_tools.cli import app
from tests.support.processes import free_port

HMAC = "ab" * 32


def test_a_bad_link_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["guest", "http://h/go-pay/orders?order_id=x"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: not a qrpay order link (it needs one order_id and one hmac): "
        "http://h/go-pay/orders?order_id=x"
    ]


def test_payments_eda_down_is_one_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    link = f"http://h/go-pay/orders?order_id=o-1&hmac={HMAC}"
    result = CliRunner().invoke(app, ["guest", link, "--api", url, "--card", "card-ok"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach payments-eda at {url}")
    assert "Traceback" not in result.output
