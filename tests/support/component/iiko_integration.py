from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from qrpay.kernel.service import ServiceContext
from tests.support.orders import order_body

API_KEY = "demo-pos-key-0123456789abcdef"  # the dev secdist's demo key: rest-1 and rest-2


HEADERS = {"X-API-Key": API_KEY}


def eda_order(
    body: dict[str, Any], *, order_id: str = "ord-1", status: str = "WAITING"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "client_id": body["client_id"],
        "internal_order_id": body["internal_order_id"],
        "status": status,
        "bill": body["bill"],
        "bill_version": 1,
        "payment_id": None,
        "created_at": "2026-01-01T12:00:00Z",
        "updated_at": "2026-01-01T12:00:00Z",
    }


def valid_order(**overrides: Any) -> dict[str, Any]:
    body = order_body("iiko-42", "100", ("Borscht", "120"), ("Discount", "-20"))
    body.update(overrides)
    return body


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


Started = tuple[ServiceContext, httpx.AsyncClient]


StartService = Callable[..., AbstractAsyncContextManager[Started]]


async def list_orders(
    client: httpx.AsyncClient,
    order_ids: list[str],
    *,
    client_id: str = "rest-1",
    headers: dict[str, str] = HEADERS,
) -> httpx.Response:
    """The POS's ``POST /orders/list`` for ``order_ids``."""
    body = {"client_id": client_id, "orders": order_ids}
    return await client.post("/orders/list", json=body, headers=headers)
