from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import service_of
from qrpay.transactions.service import TransactionsService
from tests.support.metrics import sample_value
from tests.support.services import dev_config, make_context, running_service

TTL = 3600


CALLBACK = {"queue": "payments_eda", "task": "transaction_callback"}


# The invoice payments-eda opens for an order: the body of ``PUT /v1/invoices/{invoice_id}``.
INVOICE: dict[str, Any] = {
    "owner": "payments-eda",
    "order_id": "order-1",
    "user_id": "user-1",
    "currency": "RUB",
    "callback": CALLBACK,
}


OK = {"id": "card-ok", "token": "sandbox-ok-4242"}


POOR = {"id": "card-poor", "token": "sandbox-insufficient-9995"}


BROKEN = {"id": "card-broken", "token": "sandbox-error-0119"}


@dataclass
class Transactions:
    app: FastAPI
    client: httpx.AsyncClient
    queue: TaskQueue
    clock: FrozenClock

    @property
    def service(self) -> TransactionsService:
        return service_of(self.app, TransactionsService)

    def jobs(self) -> list[dict[str, Any]]:
        """What was put on the queue, oldest first (the in-memory connector's rows)."""
        connector: Any = self.queue.app.connector
        return [connector.jobs[k] for k in sorted(connector.jobs)]

    async def invoice(self, invoice_id: str = "inv-1", **fields: Any) -> httpx.Response:
        return await self.client.put(f"/v1/invoices/{invoice_id}", json={**INVOICE, **fields})

    async def operation(self, invoice_id: str = "inv-1", **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/invoices/{invoice_id}/operations", json=body)

    async def hold(
        self, operation_id: str = "h1", card: dict[str, str] = OK, amount: str = "100"
    ) -> httpx.Response:
        return await self.operation(
            operation_id=operation_id, kind="hold", amount=amount, payment_method=card
        )

    async def get(self, invoice_id: str = "inv-1") -> dict[str, Any]:
        response = await self.client.get(f"/v1/invoices/{invoice_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextlib.asynccontextmanager
async def running_transactions(
    tmp_path: Path, clock: FrozenClock, **gateway: Any
) -> AsyncIterator[Transactions]:
    """transactions on SQLite with the sandbox gateway, background jobs off, clock frozen."""
    queue = TaskQueue()
    config = dev_config(
        transactions={
            "hold_ttl_seconds": TTL,
            "gateway": {"kind": "sandbox", "latency_ms": 0, **gateway},
        }
    )
    ctx = make_context(
        "transactions", tmp_path, config=config, queue=queue, clock=clock, background_jobs=False
    )
    async with running_service(ctx) as (app, client):
        yield Transactions(app, client, queue, clock)


async def metric(tx: Transactions, name: str, **labels: str) -> float:
    value = sample_value((await tx.client.get("/metrics")).text, name, **labels)
    return 0.0 if value is None else value
