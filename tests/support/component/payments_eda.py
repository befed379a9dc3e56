from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from qrpay.kernel import deeplink
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.payments_eda.service import PaymentsService
from qrpay.payments_eda.tasks import Handlers
from tests.support.mockserver import MockedRoute, MockServer
from tests.support.services import (
    dev_config,
    dev_secdist,
    point_services_at,
)

ORDER_ID = "ord1"


CLIENT_ID = "rest-1"  # 30% cashback, capped at 3000


USER = "user-1"


PAYMENT = "p1"


BASE = "/4.0/payments/v1"


TIMEOUT_MS = 400


def signature(order_id: str = ORDER_ID, client_id: str = CLIENT_ID) -> str:
    return deeplink.sign(dev_secdist().hmac_keys[0], order_id, client_id)


def order_body(
    status: str = "WAITING",
    *,
    payment_id: str | None = None,
    amount: str = "1000",
    order_id: str = ORDER_ID,
    client_id: str = CLIENT_ID,
    phase: str | None = None,
) -> dict[str, Any]:
    if phase is None and status == "PAYMENT_IN_PROGRESS":
        phase = "HOLDING"
    return {
        "order_id": order_id,
        "client_id": client_id,
        "internal_order_id": "iiko-42",
        "status": status,
        "bill": {
            "currency": "RUB",
            "amount": amount,
            "elements": [{"name": "Borscht", "amount": amount}],
        },
        "bill_version": 1,
        "payment_id": payment_id,
        "payment_phase": phase,
        "created_at": "2026-01-01T12:00:00Z",
        "updated_at": "2026-01-01T12:00:00Z",
    }


def card_body(
    card_id: str = "card-ok", *, user_id: str = USER, available: bool = True
) -> dict[str, Any]:
    return {
        "id": card_id,
        "type": "card",
        "system": "visa",
        "mask": "•••• 4242",
        "expiry": "12/30",
        "available": available,
        "user_id": user_id,
        "token": f"sandbox-ok-{card_id}",
    }


def public_card(card_id: str = "card-ok") -> dict[str, Any]:
    body = card_body(card_id)
    del body["user_id"], body["token"]
    return body


def operation_body(
    op_id: str = PAYMENT,
    kind: str = "hold",
    status: str = "pending",
    *,
    target: str | None = None,
    minute: int = 0,
) -> dict[str, Any]:
    return {
        "operation_id": op_id,
        "kind": kind,
        "status": status,
        "amount": "1000.00",
        "currency": "RUB",
        "target": target,
        "payment_method_id": "card-ok",
        "reason": None,
        "created_at": f"2026-01-01T12:{minute:02d}:00Z",
        "finished_at": None,
    }


def invoice_body(
    operations: list[dict[str, Any]] | None = None, user_id: str = USER
) -> dict[str, Any]:
    return {
        "invoice_id": ORDER_ID,
        "owner": "payments-eda",
        "order_id": ORDER_ID,
        "user_id": user_id,
        "currency": "RUB",
        "callback": {
            "queue": "payments_eda_transactions",
            "task": "payments_eda.transaction_callback",
        },
        "operations": operations or [],
        "held": "0",
        "cleared": "0",
        "released": "0",
    }


def callback(
    op_id: str = PAYMENT, kind: str = "hold", status: str = "succeeded", target: str | None = None
) -> dict[str, Any]:
    return {
        "invoice_id": ORDER_ID,
        "order_id": ORDER_ID,
        "operation_id": op_id,
        "kind": kind,
        "status": status,
        "amount": "1000.00",
        "currency": "RUB",
        "target": target,
        "reason": None if status == "succeeded" else "card_declined",
    }


def pay_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "restaurant",
        "order_id": ORDER_ID,
        "hmac": signature(),
        "payment_method": {"type": "card", "id": "card-ok"},
        "amount": "1000",
    }
    body.update(overrides)
    return body


@dataclass
class Env:
    ctx: ServiceContext
    client: httpx.AsyncClient
    service: PaymentsService
    handlers: Handlers
    queue: TaskQueue
    mock: MockServer

    # --- downstream mocks ---
    def order(self, status: str = "WAITING", **kw: Any) -> MockedRoute:
        return self.mock.json_handler(
            f"/v1/orders/{ORDER_ID}", order_body(status, **kw), method="GET"
        )

    def eda_write(self, action: str, body: Any, status: int = 200) -> MockedRoute:
        return self.mock.json_handler(f"/v1/orders/{ORDER_ID}/payment/{action}", body, status)

    def card(self, **kw: Any) -> MockedRoute:
        return self.mock.json_handler("/v1/payment-methods/card-ok", card_body(**kw), method="GET")

    def invoice(self, body: Any, status: int = 200) -> MockedRoute:
        return self.mock.json_handler(f"/v1/invoices/{ORDER_ID}", body, status, method="GET")

    def ensure_invoice(self, status: int = 200) -> MockedRoute:
        return self.mock.json_handler(
            f"/v1/invoices/{ORDER_ID}", invoice_body(), status, method="PUT"
        )

    def operations(self, body: Any = None, status: int = 200) -> MockedRoute:
        return self.mock.json_handler(
            f"/v1/invoices/{ORDER_ID}/operations", body or operation_body(), status
        )

    def jobs(self, task: str | None = None) -> list[dict[str, Any]]:
        rows = list(self.queue.app.connector.jobs.values())  # type: ignore[attr-defined]
        return [r for r in rows if task is None or r["task_name"] == task]

    def metric(self, name: str, **labels: str) -> float:
        value = self.ctx.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


def config_for(mock: MockServer, **extra: Any) -> Any:
    return point_services_at(
        dev_config(**extra),
        mock.base_url,
        "eda",
        "cardstorage",
        "transactions",
        "cashback",
        timeout_ms=TIMEOUT_MS,
    )
