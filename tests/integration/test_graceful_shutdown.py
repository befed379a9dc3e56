"""SIGTERM to `qrpay serve`: requests in flight finish, new ones are refused, exit 0.

iiko-integration calls eda through a fault proxy that delays each call by 1 s, so
the POS requests are still in flight when SIGTERM arrives. SQLite, no PostgreSQL.
(`qrpay worker` finishing its task in flight on SIGTERM is covered in
tests/integration/payments/test_concurrent_pay.py.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from tests.support import orders
from tests.support.faults import FaultProxy
from tests.support.processes import (
    QRPAY,
    child_env,
    free_port,
    kill_group,
    start,
    wait_for_http,
)

DEV_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]
IN_FLIGHT = 5


def order_body(internal_order_id: str) -> dict[str, Any]:
    return orders.order_body(internal_order_id, "450.00", ("Borscht", "450"))


@pytest.fixture
async def slow_pair(tmp_path: Path) -> AsyncIterator[tuple[Any, str, Path]]:
    eda_port, iiko_port = free_port(), free_port()
    proxy = FaultProxy(f"http://127.0.0.1:{eda_port}")
    await proxy.start()
    config = load_yaml(REPO_DEV_CONFIG / "config.yaml")
    config["services"]["eda"] = {"base_url": proxy.base_url, "timeout_ms": 5000, "retries": 0}
    config["orders"]["create_deadline_ms"] = 5000
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    env = child_env(
        # The development secdist: said explicitly, or a production start refuses it.
        QRPAY_ENVIRONMENT="development",
        QRPAY_CONFIG=str(tmp_path / "config.yaml"),
        QRPAY_SECDIST=str(REPO_DEV_CONFIG / "secdist.yaml"),
        QRPAY_DATA_DIR=str(tmp_path / "var"),
        QRPAY_LOG_LEVEL="INFO",
    )
    (tmp_path / "var").mkdir()
    eda_log, iiko_log = tmp_path / "eda.log", tmp_path / "iiko.log"
    eda = start([QRPAY, "serve", "eda", "--port", str(eda_port), "--migrate"], log=eda_log, env=env)
    iiko = start(
        [QRPAY, "serve", "iiko-integration", "--port", str(iiko_port)], log=iiko_log, env=env
    )
    try:
        wait_for_http([f"http://127.0.0.1:{eda_port}/ready"], process=eda, log=eda_log)
        wait_for_http([f"http://127.0.0.1:{iiko_port}/ready"], process=iiko, log=iiko_log)
        proxy.delay(1.0)
        yield iiko, f"http://127.0.0.1:{iiko_port}", iiko_log
    finally:
        kill_group(iiko)
        kill_group(eda)
        await proxy.stop()


async def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(
    slow_pair: tuple[Any, str, Path],
) -> None:
    iiko, url, log = slow_pair
    headers = {"X-API-Key": DEV_KEY}
    async with httpx.AsyncClient(timeout=15) as client:
        requests = [
            asyncio.create_task(
                client.post(f"{url}/orders", json=order_body(f"sigterm-{i}"), headers=headers)
            )
            for i in range(IN_FLIGHT)
        ]
        await asyncio.sleep(0.3)
        signalled = time.monotonic()
        iiko.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)

        # A new connection after SIGTERM: the listening socket is closed.
        async with httpx.AsyncClient(timeout=3) as late:
            with pytest.raises(httpx.TransportError):
                await late.post(f"{url}/orders", json=order_body("sigterm-late"), headers=headers)

        answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [200] * IN_FLIGHT, [a.text for a in answers]
    assert len({a.json()["order_id"] for a in answers}) == IN_FLIGHT

    exit_code = await asyncio.to_thread(iiko.wait, 10)
    assert exit_code == 0, log.read_text(errors="replace")
    assert time.monotonic() - signalled < 10
