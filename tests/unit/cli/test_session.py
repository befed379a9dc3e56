from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console
from typer.testing import CliRunner

from qrpay.cli.main import app as qrpay_app
from qrpay_tools.cli import app
from qrpay_tools.pos_sim.bill import build_order_request
from qrpay_tools.pos_sim.client import HttpError, PosClient, Unreachable
from qrpay_tools.pos_sim.errors import EXIT_NOT_PAYED, EXIT_PAYED
from qrpay_tools.pos_sim.session import SessionOptions, poll_until_final


class FakeClient:
    """Answers order_status from a script: a status string or an exception to raise; and
    order_payments with the split bill's payments so far (``payments``, grown by tests)."""

    def __init__(self, script: list[str | Exception]) -> None:
        self._script: Iterator[str | Exception] = iter(script)
        self.calls = 0
        self.payments: list[list[dict[str, Any]]] = []

    async def order_status(self, client_id: str, order_id: str) -> str:
        self.calls += 1
        step = next(self._script)
        if isinstance(step, Exception):
            raise step
        return step

    async def order_payments(self, client_id: str, order_id: str) -> dict[str, Any] | None:
        paid = self.payments.pop(0) if self.payments else []
        left = 1234.56 - sum(float(p["amount"]) for p in paid)
        return {"id": order_id, "currency": "RUB", "left": f"{left:.2f}", "payments": paid}


class FakeTime:
    """A monotonic clock that moves only when the session sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def poll(
    script: list[str | Exception],
    *,
    timeout: float = 5.0,
    fake_time: FakeTime | None = None,
    client: FakeClient | None = None,
) -> tuple[int, str]:
    console = Console(record=True, width=200)
    options = SessionOptions(
        url="http://x",
        api_key="k",
        out_dir=Path("."),
        timeout_seconds=timeout,
        poll_interval_seconds=1.0,
    )
    time = fake_time or FakeTime()
    code = await poll_until_final(
        cast(PosClient, client or FakeClient(script)),
        build_order_request(),
        "ord-1",
        options,
        console,
        monotonic=time.monotonic,
        sleep=time.sleep,
    )
    return code, console.export_text()


async def test_paid_order_exits_zero() -> None:
    code, output = await poll(["WAITING", "WAITING", "PAYED"])
    assert code == EXIT_PAYED
    assert "order ord-1: PAID" in output


@pytest.mark.parametrize("final", ["CANCELED", "NOT_FOUND"])
async def test_closed_or_unknown_order_exits_one(final: str) -> None:
    code, output = await poll(["WAITING", final])
    assert code == EXIT_NOT_PAYED
    assert f"order ord-1: {final}" in output


async def test_each_payment_of_a_split_bill_is_printed_once_with_what_is_left() -> None:
    first = {"id": "s1", "amount": "450.50", "tip": "0.00", "items": [0]}
    second = {"id": "s2", "amount": "784.06", "tip": "78.41", "items": []}
    client = FakeClient(["WAITING", "WAITING", "PAYED"])
    client.payments = [[first], [first, second], [first, second]]
    code, output = await poll([], client=client)
    assert code == EXIT_PAYED
    lines = [line for line in output.splitlines() if line.startswith("payment")]
    assert lines == [
        "payment 1: 450.50 RUB for Borscht · left 784.06 RUB",
        "payment 2: 784.06 RUB, tip 78.41 RUB · left 0.00 RUB",
    ]


async def test_timeout_exits_one() -> None:
    fake_time = FakeTime()
    code, output = await poll(["WAITING"] * 4, timeout=2.5, fake_time=fake_time)
    assert code == EXIT_NOT_PAYED
    assert "still not paid after 2s" in output
    # Polls at 0, 1 and 2 s, then sleeps only the half second left and gives up at 2.5 s.
    assert fake_time.sleeps == [1.0, 1.0, 0.5]


async def test_a_short_outage_is_ridden_out() -> None:
    outage: list[str | Exception] = [
        Unreachable("error: cannot reach"),
        HttpError(503, b'{"code": "eda_unavailable", "message": "down"}', "rest-1"),
    ]
    code, _ = await poll(["WAITING", *outage, "PAYED"])
    assert code == EXIT_PAYED


async def test_a_long_outage_or_a_rejected_key_ends_the_session() -> None:
    with pytest.raises(Unreachable):
        await poll([Unreachable("error: cannot reach")] * 10)
    with pytest.raises(HttpError) as caught:
        await poll([HttpError(401, b'{"code": "unauthorized", "message": "no"}', "rest-1")])
    assert caught.value.status == 401


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return str(lines[0])


def test_cli_bad_item_is_one_line_and_exit_two() -> None:
    result = CliRunner().invoke(app, ["pos-sim", "--item", "Borscht", "--no-wait"])
    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: --item 'Borscht'")


def test_cli_bad_bill_file_is_one_line_and_exit_two(tmp_path: Path) -> None:
    path = tmp_path / "bill.json"
    path.write_text(json.dumps({"elements": []}))
    result = CliRunner().invoke(app, ["pos-sim", "--bill-file", str(path), "--no-wait"])
    assert result.exit_code == 2
    assert "bill.elements must be a non-empty list" in one_error_line(result)


def test_cli_db_upgrade_of_a_service_without_database() -> None:
    result = CliRunner().invoke(qrpay_app, ["db", "upgrade", "iiko-integration"])
    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: no database for iiko-integration")


def test_cli_serve_unknown_service() -> None:
    result = CliRunner().invoke(qrpay_app, ["serve", "nope"])
    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: unknown service 'nope'")
