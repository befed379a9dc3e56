"""A late hold answer through api-proxy, as a signed-in guest pays (issue 18).

transactions records the hold at once but its answer comes later than payments-eda's whole
pay budget (``payments.pay_budget_ms``). Before, api-proxy gave up at its own 2 s, before
payments-eda did, and the guest was answered 503 while being charged. Now payments-eda's
calls end within the budget (the hold's outcome unknown: 200 WAITING) and api-proxy waits
the budget and more: the guest gets 200 WAITING, the page follows the payment, and it ends
PAYED with one charge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER, payment_id_for
from tests.faults.test_late_answers import LateAnswerProxy
from tests.plugins.cluster import running_faulty_cluster
from tests.support.faults import SelectiveFaultProxy
from tests.support.payments_cluster import FaultyCluster
from tests.support.postgres import DatabaseFactory
from tests.support.tickets import ticket_headers

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(300)]

PAY_BUDGET_MS = 3000
DEMO_USER = "demo-user"  # the development sign-in's guest
CARD = "late-card"


def _configure(config: dict[str, Any]) -> None:
    config["payments"] = {**config.get("payments", {}), "pay_budget_ms": PAY_BUDGET_MS}
    # Longer than the budget: what ends payments-eda's wait is its budget, not this.
    config["services"]["transactions"]["timeout_ms"] = 10_000


@pytest.fixture
async def cluster(tmp_path: Path, pg_database: DatabaseFactory) -> AsyncIterator[FaultyCluster]:
    def proxy_for(name: str, url: str) -> SelectiveFaultProxy:
        return LateAnswerProxy(url) if name == "transactions" else SelectiveFaultProxy(url)

    async for instance in running_faulty_cluster(tmp_path, pg_database, proxy_for, _configure):
        instance.serve("api-proxy", instance.ports["api-proxy"])
        instance.worker("a")
        bound = httpx.put(
            f"{instance.url('cardstorage')}/v1/payment-methods/{CARD}",
            json={
                "user_id": DEMO_USER,
                "token": "sandbox-ok-4242",
                "last4": "4242",
                "expiry_month": 12,
                "expiry_year": 2030,
            },
            headers=ticket_headers(to="cardstorage"),
            timeout=10,
        )
        assert bound.status_code == 200, bound.text
        yield instance


async def test_a_late_hold_answer_is_waiting_then_paid_once(cluster: FaultyCluster) -> None:
    proxy = cluster.proxies["transactions"]
    assert isinstance(proxy, LateAnswerProxy)
    proxy.late_by = PAY_BUDGET_MS / 1000 + 3
    order_id, signature = cluster.create_order("1000.00")
    token = "late-answer-token-1"
    async with httpx.AsyncClient(base_url=cluster.url("api-proxy"), timeout=60) as guest:
        signed_in = await guest.post("/login", data={"user_id": DEMO_USER, "next": "/"})
        assert signed_in.status_code == 303, signed_in.text
        body = {
            "service": "restaurant",
            "order_id": order_id,
            "hmac": signature,
            "payment_method": {"type": "card", "id": CARD},
            "amount": "1000.00",
            "currency": "RUB",
        }
        answer = await guest.post(
            "/4.0/payments/v1/orders", json=body, headers={IDEMPOTENCY_TOKEN_HEADER: token}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "WAITING", answer.text
        assert answer.json()["payment_id"] == payment_id_for(order_id, token)
        assert proxy.late == 1  # the hold reached transactions; its answer came late

        # The guest follows the payment as the page does, and taps again once: same token.
        again = await guest.post(
            "/4.0/payments/v1/orders", json=body, headers={IDEMPOTENCY_TOKEN_HEADER: token}
        )
        assert again.status_code == 200, again.text
        assert again.json()["payment_id"] == payment_id_for(order_id, token)
        give_up = time.monotonic() + 90
        status = None
        while time.monotonic() < give_up:
            polled = await guest.get(
                "/4.0/payments/v1/orders", params={"order_id": order_id, "hmac": signature}
            )
            assert polled.status_code == 200, polled.text
            status = polled.json()["status"]
            if status == "PAYED":
                break
            await asyncio.sleep(0.3)
        assert status == "PAYED", cluster.logs()

    invoice = httpx.get(
        f"{cluster.url('transactions')}/v1/invoices/{payment_id_for(order_id, token)}",
        headers=ticket_headers("payments-eda", to="transactions"),
        timeout=10,
    )
    assert invoice.status_code == 200, invoice.text
    ops = invoice.json()["operations"]
    kinds = sorted((op["kind"], op["status"]) for op in ops)
    assert kinds == [("clear", "succeeded"), ("hold", "succeeded")], ops
    ledger = httpx.get(
        f"{cluster.url('eda')}/v1/orders/{order_id}/payments",
        headers=ticket_headers("payments-eda", to="eda"),
        timeout=10,
    ).json()
    assert [p["state"] for p in ledger["payments"]] == ["paid"], ledger
