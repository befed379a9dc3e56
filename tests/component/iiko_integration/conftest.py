from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.kernel.config import QrpayConfig, Secdist
from qrpay.kernel.service import ServiceContext
from tests.support.mockserver import MockServer
from tests.support.services import dev_config, make_context, point_services_at, running_service

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
    body: dict[str, Any] = {
        "client_id": "rest-1",
        "internal_order_id": "iiko-42",
        "bill": {
            "currency": "RUB",
            "amount": "100",
            "elements": [
                {"name": "Borscht", "amount": "120"},
                {"name": "Discount", "amount": "-20"},
            ],
        },
    }
    body.update(overrides)
    return body


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


Started = tuple[ServiceContext, httpx.AsyncClient]
StartService = Callable[..., AbstractAsyncContextManager[Started]]


@pytest.fixture
def iiko_context(tmp_path: Path, mockserver: MockServer) -> Callable[..., ServiceContext]:
    def build(
        config: QrpayConfig | None = None, *, secdist: Secdist | None = None, **eda: Any
    ) -> ServiceContext:
        base = config or dev_config()
        pointed = point_services_at(base, eda.pop("base_url", mockserver.base_url), "eda", **eda)
        return make_context("iiko-integration", tmp_path, config=pointed, secdist=secdist)

    return build


@pytest.fixture
async def iiko(iiko_context: Callable[..., ServiceContext]) -> AsyncIterator[Started]:
    ctx = iiko_context()
    async with running_service(ctx) as (_app, client):
        yield ctx, client
