"""Issue 11, edge inputs, on PostgreSQL: text PostgreSQL cannot store is a 400 at the edge.

eda runs on a fresh PostgreSQL database (SQLite stores a NUL character; PostgreSQL
refuses it, which used to surface as a 500), served on a real port; iiko-integration and
payments-eda run in-process in front of it, as the POS and the payer reach them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from tests.plugins.postgres import ServiceUnderTest
from tests.support.component.iiko_integration import HEADERS, closed_port_url, valid_order
from tests.support.component.payments_eda import USER, pay_body
from tests.support.postgres import DatabaseFactory, migrate, row_count
from tests.support.services import (
    dev_config,
    eda_on_postgres,
    make_context,
    point_services_at,
    running_service,
)

pytestmark = pytest.mark.postgres

PAYER = "/4.0/payments/v1"
NUL = "\x00"


@dataclass
class Stack:
    eda_url: str
    database_url: str
    eda: httpx.AsyncClient
    iiko: httpx.AsyncClient
    payments: httpx.AsyncClient

    async def orders(self) -> int:
        return await row_count(self.database_url, "orders")


@pytest.fixture
def service_under_test() -> ServiceUnderTest:
    return ServiceUnderTest("eda")


@pytest.fixture
async def stack(
    pg_database: DatabaseFactory, tmp_path: Path, frozen_clock: FrozenClock
) -> AsyncIterator[Stack]:
    async with pg_database() as url:
        await migrate("eda", url)
        async with eda_on_postgres(tmp_path, url, frozen_clock, migrate=False) as eda:
            _eda_app, eda_client, eda_url = eda
            config = point_services_at(dev_config(), eda_url, "eda", retries=0)
            # The refused calls below never get past eda: the rest is unreachable.
            config = point_services_at(
                config, closed_port_url(), "cardstorage", "transactions", "cashback"
            )
            iiko_ctx = make_context("iiko-integration", tmp_path / "iiko", config=config)
            queue = TaskQueue()
            payments_ctx = make_context(
                "payments-eda", tmp_path / "payments", config=config, queue=queue
            )
            async with (
                running_service(iiko_ctx) as (_iiko_app, iiko),
                running_service(payments_ctx) as (_payments_app, payments),
            ):
                yield Stack(eda_url, url, eda_client, iiko, payments)
            await queue.close()


def with_element_name(name: str) -> dict[str, Any]:
    body = valid_order()
    body["bill"]["elements"][0]["name"] = name
    return body


@pytest.mark.parametrize(
    "body",
    [
        valid_order(internal_order_id=f"iiko{NUL}42"),
        with_element_name(f"Bor{NUL}scht"),
    ],
    ids=["internal_order_id", "element name"],
)
async def test_a_nul_in_a_new_order_is_a_400_and_creates_nothing(
    stack: Stack, body: dict[str, Any]
) -> None:
    answer = await stack.iiko.post("/orders", json=body, headers=HEADERS)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"
    assert await stack.orders() == 0


async def test_a_nul_in_a_polled_order_id_is_a_400(stack: Stack) -> None:
    created = await stack.iiko.post("/orders", json=valid_order(), headers=HEADERS)
    assert created.status_code == 200, created.text
    order_id = created.json()["order_id"]

    answer = await stack.iiko.post(
        "/orders/list",
        json={"client_id": "rest-1", "orders": [order_id, f"ord{NUL}"]},
        headers=HEADERS,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"
    # The next poll is not hurt by the one before.
    ok = await stack.iiko.post(
        "/orders/list", json={"client_id": "rest-1", "orders": [order_id]}, headers=HEADERS
    )
    assert ok.json() == {"orders": [{"id": order_id, "status": "WAITING"}]}


async def test_eda_refuses_a_nul_in_an_order_id_itself(stack: Stack) -> None:
    """A caller that skips iiko-integration's checks still gets a 4xx, never a 500."""
    statuses = await stack.eda.post("/v1/orders/statuses", json={"order_ids": ["a", f"b{NUL}"]})
    assert statuses.status_code == 400, statuses.text
    one = await stack.eda.get("/v1/orders/a%00b")
    assert one.status_code in (400, 404), one.text
    create = await stack.eda.post(
        "/v1/orders",
        json={
            "client_id": f"rest{NUL}1",
            "internal_order_id": "iiko-1",
            "bill": valid_order()["bill"],
        },
    )
    assert create.status_code == 400, create.text
    assert await stack.orders() == 0


async def test_a_non_ascii_hmac_of_a_real_order_is_a_404_like_any_wrong_hmac(
    stack: Stack,
) -> None:
    created = await stack.iiko.post("/orders", json=valid_order(), headers=HEADERS)
    order_id = created.json()["order_id"]
    forged = "é" * 64  # 64 characters, as many as a real signature
    preorder = await stack.payments.get(
        f"{PAYER}/preorder", params={"service": "restaurant", "order_id": order_id, "hmac": forged}
    )
    status = await stack.payments.get(
        f"{PAYER}/orders", params={"order_id": order_id, "hmac": forged}
    )
    pay = await stack.payments.post(
        f"{PAYER}/orders",
        json=pay_body(order_id=order_id, hmac=forged, amount="100"),
        headers={"X-Yandex-UID": USER},
    )
    for answer in (preorder, status, pay):
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "order_not_found"
