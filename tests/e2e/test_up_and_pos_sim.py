"""`qrpay up` and `qrpay pos-sim` as an operator runs them: real processes, real ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import zxingcpp
from PIL import Image

from qrpay.kernel.deeplink import verify
from qrpay.runner.registry import SERVICE_MODULES
from tests.support.processes import (
    QRPAY,
    QRPAY_TOOLS,
    QrpayUp,
    free_port,
    link_of,
    order_id_of,
    run,
    wait_for_text,
)
from tests.support.services import dev_secdist
from tests.support.tickets import ticket_headers

pytestmark = pytest.mark.e2e

DEV_KEY = dev_secdist().api_keys[0].key.get_secret_value()
HMAC_KEYS = dev_secdist().hmac_keys


@pytest.fixture
def up(tmp_path: Path) -> Iterator[QrpayUp]:
    with QrpayUp.running(tmp_path) as instance:  # each test starts it itself
        yield instance


def order_statuses(iiko: str, order_ids: list[str]) -> list[dict[str, str]]:
    answer = httpx.post(
        f"{iiko}/orders/list",
        json={"client_id": "rest-1", "orders": order_ids},
        headers={"X-API-Key": DEV_KEY},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    orders: list[dict[str, str]] = answer.json()["orders"]
    return orders


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def pay_the_bill_on_eda(up: QrpayUp, order_id: str) -> None:
    """Stand in for payments-eda (eda's payment moves are its): the payment of the whole
    bill of 100 it would make, straight on eda."""
    eda = f"http://127.0.0.1:{up.ports['eda']}/v1/orders/{order_id}/payments"
    payer = ticket_headers("payments-eda", to="eda")
    body = {"payment_id": "pay-1", "choice": {"way": "rest"}, "amount": "100.00", "currency": "RUB"}
    started = httpx.post(f"{eda}/start", json=body, headers=payer)
    assert started.status_code == 200, started.text
    completed = httpx.post(f"{eda}/complete", json={"payment_id": "pay-1"}, headers=payer)
    assert completed.status_code == 200, completed.text


def test_up_pos_sim_stop_and_restart(up: QrpayUp, tmp_path: Path) -> None:
    up.start(SERVICE_MODULES)
    assert (up.data_dir / "config.yaml").exists()
    assert (up.data_dir / "secdist.yaml").exists()
    wait_for_text(up.log, f"qrpay-tools pos-sim --url {up.url('iiko-integration')}")

    out_dir = tmp_path / "out"
    sim = up.pos_sim("--out-dir", str(out_dir), cwd=tmp_path)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    printed_link = link_of(sim.stdout)

    qr_files = list(out_dir.glob("*-qr.png"))
    assert len(qr_files) == 1
    assert len(list(out_dir.glob("*-receipt.png"))) == 1
    decoded = zxingcpp.read_barcodes(Image.open(qr_files[0]), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [code.text for code in decoded] == [printed_link]

    link = urlsplit(printed_link)
    assert f"{link.scheme}://{link.netloc}{link.path}" == (
        f"http://127.0.0.1:{up.ports['api-proxy']}/go-pay/orders"
    )
    query = parse_qs(link.query)
    order_id = query["order_id"][0]
    assert f"Order id:   {order_id}" in sim.stdout
    assert verify(HMAC_KEYS, order_id, "rest-1", query["hmac"][0])
    assert not verify(HMAC_KEYS, order_id, "rest-2", query["hmac"][0])

    assert order_statuses(up.url("iiko-integration"), [order_id]) == [
        {"id": order_id, "status": "WAITING"}
    ]

    wrong_key = up.pos_sim("--api-key", "not-the-key-0123456789", cwd=tmp_path)
    assert wrong_key.returncode == 2
    assert_one_error_line(wrong_key, "401")

    forbidden = up.pos_sim("--client-id", "rest-3", cwd=tmp_path)
    assert forbidden.returncode == 2
    assert_one_error_line(forbidden, "403")

    assert up.stop() == 0, up.output()
    assert "Traceback" not in up.output()

    # Same data directory: the config is reused and the order is still there.
    up.start(SERVICE_MODULES)
    assert order_statuses(up.url("iiko-integration"), [order_id]) == [
        {"id": order_id, "status": "WAITING"}
    ]
    assert up.stop() == 0, up.output()


def test_pos_sim_against_a_closed_port_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run([QRPAY_TOOLS, "pos-sim", "--url", url, "--no-wait"], cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, f"cannot reach iiko-integration at {url}", "qrpay up")


def test_up_on_a_busy_port_fails_in_one_line(up: QrpayUp) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", up.ports["eda"]))
        holder.listen()
        result = run([QRPAY, "up", "--data-dir", str(up.data_dir), "--port-base", str(up.base)])
    assert result.returncode == 2
    assert_one_error_line(result, f"port {up.ports['eda']}", "already in use")


def test_pos_sim_waits_until_the_order_is_paid(up: QrpayUp, tmp_path: Path) -> None:
    up.start(SERVICE_MODULES)
    options = ("--poll-interval", "0.2", "--timeout", "60")
    with up.waiting_pos(tmp_path, "Tea=100", options=options) as (sim, log, link):
        order_id = order_id_of(link)
        pay_the_bill_on_eda(up, order_id)
        assert sim.wait(timeout=30) == 0, log.read_text()
        assert f"order {order_id}: PAID 100.00 RUB" in log.read_text()
    assert up.stop() == 0


def test_pos_sim_push_prints_each_change_as_it_arrives(up: QrpayUp, tmp_path: Path) -> None:
    up.start(SERVICE_MODULES)
    # Polling would not see the payment within the test: only the push does.
    options = ("--push", "--poll-interval", "600", "--timeout", "60")
    with up.waiting_pos(tmp_path, "Tea=100", options=options) as (sim, log, link):
        order_id = order_id_of(link)
        # Subscribed: its one status read is printed before any change.
        wait_for_text(log, f"order {order_id}: WAITING", timeout=30)
        pay_the_bill_on_eda(up, order_id)
        assert sim.wait(timeout=30) == 0, log.read_text()
        text = log.read_text()
        assert f"order {order_id}: PAYED" in text
        assert f"order {order_id}: PAID 100.00 RUB" in text
    assert up.stop() == 0
