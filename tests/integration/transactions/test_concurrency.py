"""transactions' guarantees on real PostgreSQL, across two instances and a durable queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import service_of
from qrpay.transactions.config import GatewayConfig
from qrpay.transactions.gateway import (
    FLAKY_CLEAR_PREFIX,
    FLAKY_CLEAR_REFUSALS,
    GatewayResult,
    PaymentGateway,
    SandboxGateway,
)
from qrpay.transactions.service import TransactionsService

pytestmark = pytest.mark.postgres

CALLBACK = {"queue": "payments_eda", "task": "transaction_callback"}


class CountingGateway(PaymentGateway):
    """One sandbox shared by both instances, counting calls per idempotency key."""

    def __init__(self) -> None:
        self.sandbox = SandboxGateway(lambda: GatewayConfig(latency_ms=20))
        self.keys: Counter[str] = Counter()

    async def _counted(
        self, call: str, token: str, amount: Decimal, currency: str, key: str, *rest: Any
    ) -> GatewayResult:
        self.keys[key] += 1
        result: GatewayResult = await getattr(self.sandbox, call)(
            token, amount, currency, key, *rest
        )
        return result

    async def hold(self, *args: Any) -> GatewayResult:
        return await self._counted("hold", *args)

    async def clear(self, *args: Any) -> GatewayResult:
        return await self._counted("clear", *args)

    async def unhold(self, *args: Any) -> GatewayResult:
        return await self._counted("unhold", *args)

    async def refund(self, *args: Any) -> GatewayResult:
        return await self._counted("refund", *args)

    async def lookup(self, idempotency_key: str) -> GatewayResult | None:
        return await self.sandbox.lookup(idempotency_key)


def service(instance: tuple[FastAPI, httpx.AsyncClient]) -> TransactionsService:
    return service_of(instance[0], TransactionsService)


async def put_invoice(client: httpx.AsyncClient, invoice_id: str) -> None:
    response = await client.put(
        f"/v1/invoices/{invoice_id}",
        json={
            "owner": "payments-eda",
            "order_id": f"order-{invoice_id}",
            "user_id": "user-1",
            "currency": "RUB",
            "callback": CALLBACK,
        },
    )
    assert response.status_code == 200, response.text


async def hold(client: httpx.AsyncClient, invoice_id: str, operation_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/invoices/{invoice_id}/operations",
        json={
            "operation_id": operation_id,
            "kind": "hold",
            "amount": "100",
            "payment_method": {"id": "card-ok", "token": "sandbox-ok-4242"},
        },
    )


async def queued(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT queueing_lock, queue_name, args FROM procrastinate_jobs ORDER BY id")
            )
            return [(lock, queue, args) for lock, queue, args in rows]
    finally:
        await engine.dispose()


async def test_thirty_concurrent_holds_leave_one_live_hold(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]],
) -> None:
    clients = [client for _app, client in running_instances]
    await put_invoice(clients[0], "inv-1")
    await put_invoice(clients[1], "inv-1")
    responses = await asyncio.gather(*(hold(clients[i % 2], "inv-1", f"h-{i}") for i in range(30)))
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in responses if r.status_code not in (200, 409)]
    assert {r.json()["code"] for r in responses if r.status_code != 200} == {"hold_active"}
    invoice = (await clients[1].get("/v1/invoices/inv-1")).json()
    assert [op["operation_id"] for op in invoice["operations"]] == [
        accepted[0].json()["operation_id"]
    ]


async def test_relays_on_two_instances_process_and_report_each_operation_once(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]], migrated_pg_url: str
) -> None:
    gateway = CountingGateway()
    for instance in running_instances:
        service(instance).gateway = gateway
    clients = [client for _app, client in running_instances]
    invoice_ids = [f"inv-{i}" for i in range(20)]
    for i, invoice_id in enumerate(invoice_ids):
        await put_invoice(clients[i % 2], invoice_id)
        assert (await hold(clients[i % 2], invoice_id, "h1")).status_code == 200

    for _ in range(3):
        await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))

    assert gateway.keys == Counter({f"{invoice_id}:h1": 1 for invoice_id in invoice_ids})
    jobs = await queued(migrated_pg_url)
    assert sorted(lock for lock, _queue, _args in jobs) == sorted(
        f"{invoice_id}:h1:succeeded" for invoice_id in invoice_ids
    )
    assert {queue for _lock, queue, _args in jobs} == {"payments_eda"}
    assert all(args["status"] == "succeeded" for _lock, _queue, args in jobs)

    # Clears started on both instances are processed once each as well.
    for i, invoice_id in enumerate(invoice_ids):
        response = await clients[i % 2].post(
            f"/v1/invoices/{invoice_id}/operations",
            json={"operation_id": "c1", "kind": "clear", "target": "h1"},
        )
        assert response.status_code == 200, response.text
    for _ in range(3):
        await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))
    assert all(count == 1 for count in gateway.keys.values())
    assert len(gateway.keys) == 40
    jobs = await queued(migrated_pg_url)
    assert len(jobs) == 40
    assert len({lock for lock, _queue, _args in jobs}) == 40
    invoice = (await clients[0].get("/v1/invoices/inv-7")).json()
    assert (invoice["held"], invoice["cleared"]) == ("0.00", "100.00")


async def test_refused_clears_retried_on_two_instances_call_each_key_once(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]],
    migrated_pg_url: str,
    frozen_clock: FrozenClock,
) -> None:
    """Both relays race for every retry: each try's key reaches the gateway once, each
    refusal is counted once, and each clear is reported once, when it succeeds."""
    gateway = CountingGateway()
    for instance in running_instances:
        service(instance).gateway = gateway
    clients = [client for _app, client in running_instances]
    flaky = {"id": "card-flaky", "token": f"{FLAKY_CLEAR_PREFIX}4444"}
    invoice_ids = [f"inv-{i}" for i in range(10)]
    for i, invoice_id in enumerate(invoice_ids):
        await put_invoice(clients[i % 2], invoice_id)
        body = {"operation_id": "h1", "kind": "hold", "amount": "100", "payment_method": flaky}
        started = await clients[i % 2].post(f"/v1/invoices/{invoice_id}/operations", json=body)
        assert started.status_code == 200, started.text
    await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))
    for i, invoice_id in enumerate(invoice_ids):
        response = await clients[i % 2].post(
            f"/v1/invoices/{invoice_id}/operations",
            json={"operation_id": "c1", "kind": "clear", "target": "h1"},
        )
        assert response.status_code == 200, response.text

    for _ in range(FLAKY_CLEAR_REFUSALS + 2):
        await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))
        frozen_clock.advance(30)  # past any backoff (retry_cap_seconds)
    await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))

    tries = ["c1"] + [f"c1:{n}" for n in range(2, FLAKY_CLEAR_REFUSALS + 2)]
    expected = {f"{invoice_id}:{key}": 1 for invoice_id in invoice_ids for key in tries}
    assert {k: v for k, v in gateway.keys.items() if ":c1" in k} == expected
    jobs = await queued(migrated_pg_url)
    clear_jobs = sorted(lock for lock, _queue, _args in jobs if ":c1:" in lock)
    assert clear_jobs == sorted(f"{invoice_id}:c1:succeeded" for invoice_id in invoice_ids)
    invoice = (await clients[1].get("/v1/invoices/inv-3")).json()
    assert (invoice["held"], invoice["cleared"]) == ("0.00", "100.00")


async def test_concurrent_refunds_on_two_instances_never_exceed_what_was_cleared(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]], migrated_pg_url: str
) -> None:
    """Thirty refunds of 10.00 and 7.00 race across two instances (two engines) for a hold
    cleared at 100.00: the invoice's lock admits them one at a time, so what is admitted
    (pending, then succeeded) never adds up to more than the clear."""
    gateway = CountingGateway()
    for instance in running_instances:
        service(instance).gateway = gateway
    clients = [client for _app, client in running_instances]
    await put_invoice(clients[0], "inv-r")
    assert (await hold(clients[1], "inv-r", "h1")).status_code == 200
    await service(running_instances[0]).relay_once()
    clear = {"operation_id": "h1.clear", "kind": "clear", "target": "h1"}
    assert (await clients[1].post("/v1/invoices/inv-r/operations", json=clear)).status_code == 200
    await service(running_instances[1]).relay_once()

    amounts = ["10.00" if i % 3 else "7.00" for i in range(30)]  # 260.00 asked in all

    async def refund(i: int) -> httpx.Response:
        body = {"operation_id": f"r{i}.1", "kind": "refund", "target": "h1", "amount": amounts[i]}
        return await clients[i % 2].post("/v1/invoices/inv-r/operations", json=body)

    responses = await asyncio.gather(*(refund(i) for i in range(30)))

    unexpected = [r.text for r in responses if r.status_code not in (200, 409)]
    assert unexpected == []
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {
        "refund_exceeds_cleared"
    }
    admitted = {
        r.json()["operation_id"]: Decimal(r.json()["amount"])
        for r in responses
        if r.status_code == 200
    }
    assert sum(admitted.values()) <= Decimal(100)
    # Refused only when it did not fit: the smallest ask no longer fits in what is left.
    assert Decimal(100) - sum(admitted.values()) < Decimal(7)
    invoice = (await clients[0].get("/v1/invoices/inv-r")).json()
    recorded = {o["operation_id"] for o in invoice["operations"] if o["kind"] == "refund"}
    assert recorded == set(admitted)

    for _ in range(2):
        await asyncio.gather(*(service(instance).relay_once() for instance in running_instances))

    invoice = (await clients[1].get("/v1/invoices/inv-r")).json()
    assert Decimal(invoice["refunded"]) == sum(admitted.values())
    assert invoice["cleared"] == "100.00"
    refund_keys = {key: n for key, n in gateway.keys.items() if ":r" in key}
    assert refund_keys == {f"inv-r:{operation_id}": 1 for operation_id in admitted}
    jobs = await queued(migrated_pg_url)
    assert sorted(lock for lock, _queue, args in jobs if args["kind"] == "refund") == sorted(
        f"inv-r:{operation_id}:succeeded" for operation_id in admitted
    )
