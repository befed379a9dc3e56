"""Two iiko-integration processes and one eda on PostgreSQL, started with `qrpay serve`.

SPEC 4.1: concurrent duplicates, on any number of instances, make exactly one order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.embedded import embedded_config, ports_for
from tests.support import orders
from tests.support.processes import (
    QRPAY,
    ServedProcesses,
    child_env,
    free_port_base,
    run,
)

pytestmark = pytest.mark.postgres

CONCURRENCY = 50
DEV_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]


class Cluster(ServedProcesses):
    log_tail = 1_000_000

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp = tmp_path
        base = free_port_base(len(ports_for(8080)) + 1)
        ports = ports_for(base)
        self.eda_port = ports["eda"]
        self.iiko_ports = [ports["iiko-integration"], base + len(ports)]
        config = embedded_config(load_yaml(REPO_DEV_CONFIG / "config.yaml"), "127.0.0.1", base)
        # These tests are about one order per POS order, not about latency: a loaded box must
        # not turn a slow eda into a 503 (the deadlines have their own tests).
        config["orders"].update(create_deadline_ms=30_000, status_deadline_ms=30_000)
        config["services"]["eda"]["timeout_ms"] = 30_000
        config_path = tmp_path / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        secdist = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")
        secdist["databases"] = {"eda": database_url}
        secdist_path = tmp_path / "secdist.yaml"
        secdist_path.write_text(yaml.safe_dump(secdist))
        self.env = child_env(
            # The development secdist: said explicitly, or a production start refuses it.
            QRPAY_ENVIRONMENT="development",
            QRPAY_CONFIG=str(config_path),
            QRPAY_SECDIST=str(secdist_path),
            QRPAY_DATA_DIR=str(tmp_path / "var"),
            QRPAY_LOG_LEVEL="WARNING",
        )
        self.processes: list[tuple[Any, Path]] = []


@pytest.fixture
async def database_url(
    pg_database: Callable[[], AbstractAsyncContextManager[str]],
) -> Any:
    async with pg_database() as url:
        yield url


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[Cluster]:
    instance = Cluster(tmp_path, database_url)
    migrated = run([QRPAY, "db", "upgrade", "eda"], env=instance.env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "eda: at head" in migrated.stdout
    try:
        instance.serve("eda", instance.eda_port, f"eda-{instance.eda_port}")
        for port in instance.iiko_ports:
            instance.serve("iiko-integration", port, f"iiko-integration-{port}")
        yield instance
    finally:
        # Before the database is dropped: its sessions must be gone.
        instance.stop()


def order_body(internal_order_id: str) -> dict[str, Any]:
    return orders.order_body(internal_order_id, "1120.00", ("Borscht", "450"), ("Pelmeni", "670"))


async def post_orders(cluster: Cluster, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"http://127.0.0.1:{cluster.iiko_ports[index % 2]}/orders",
                    json=body,
                    headers={"X-API-Key": DEV_KEY},
                )
                for index, body in enumerate(bodies)
            )
        )


async def rows_for(database_url: str, internal_ids: list[str]) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(*) FROM orders"
                    " WHERE client_id = 'rest-1' AND internal_order_id = ANY(:ids)"
                ),
                {"ids": internal_ids},
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def test_concurrent_duplicates_over_two_instances_make_one_order(
    cluster: Cluster, database_url: str
) -> None:
    answers = await post_orders(cluster, [order_body("iiko-dup-1")] * CONCURRENCY)
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * CONCURRENCY, [a.text for a in answers if a.status_code != 200][:3]
    order_ids = {answer.json()["order_id"] for answer in answers}
    assert len(order_ids) == 1
    lines = {str(answer.json()["bill_lines"]) for answer in answers}
    assert len(lines) == 1
    assert await rows_for(database_url, ["iiko-dup-1"]) == 1


async def test_concurrent_distinct_orders_over_two_instances(
    cluster: Cluster, database_url: str
) -> None:
    internal_ids = [f"iiko-many-{index}" for index in range(CONCURRENCY)]
    answers = await post_orders(cluster, [order_body(internal) for internal in internal_ids])
    assert [a.status_code for a in answers] == [200] * CONCURRENCY, cluster.logs()[-3000:]
    assert len({answer.json()["order_id"] for answer in answers}) == CONCURRENCY
    assert await rows_for(database_url, internal_ids) == CONCURRENCY
