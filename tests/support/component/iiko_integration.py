from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from aiohttp import web

from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.service import ServiceContext
from tests.support.mockserver import MockServer, error_response, json_response
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


# An instance whose feed follower runs: its context, a client, and its service.
Following = tuple[ServiceContext, httpx.AsyncClient, IikoService]


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


# The feed's tail in the mocked eda: the feed's keys are "<change_tx>:<order_id>", and
# ``change`` numbers its transactions after it.
TAIL_TX = 10
TAIL = f"{TAIL_TX}:"


def cursor_of(change: dict[str, Any]) -> str:
    return f"{change['change_tx']}:{change['order_id']}"


class MockedFeed:
    """eda's change feed on the mock server: pages handed out in order, an empty page after
    ``wait_ms`` (a long-poll with nothing new), or 503 while ``down``; while ``held_back``,
    a page that says more is committed than can be served yet."""

    def __init__(self, mockserver: MockServer, tail: str = TAIL) -> None:
        self.pages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.down = False
        self.held_back = False
        # One restaurant's part of the feed (the POS's push): its pages, and the reads of it.
        self.restaurant_pages: dict[str, list[dict[str, Any]]] = {}
        self.restaurant_reads: list[dict[str, str]] = []
        self.reads = 0
        self._cursor = tail
        mockserver.json_handler("/v1/orders/changes/tail", {"cursor": tail}, method="GET")
        mockserver.handler("/v1/orders/changes", method="GET")(self._changes)

    def publish(self, *changes: dict[str, Any], more: bool = False) -> None:
        if changes:
            self._cursor = cursor_of(changes[-1])
        self.pages.put_nowait({"changes": list(changes), "cursor": self._cursor, "more": more})

    async def _changes(self, request: web.Request) -> web.Response:
        if self.down:
            return error_response(503, "database_unavailable")
        if "client_id" in request.query:
            return self._restaurant_changes(dict(request.query))
        wait = int(request.query["wait_ms"]) / 1000
        page = {"changes": [], "cursor": request.query["after"], "more": self.held_back}
        if self.held_back:
            await asyncio.sleep(wait)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    page = await self.pages.get()
        self.reads += 1
        return json_response(page)

    def _restaurant_changes(self, query: dict[str, str]) -> web.Response:
        self.restaurant_reads.append(query)
        pages = self.restaurant_pages.get(query["client_id"])
        if pages:
            return json_response(pages.pop(0))
        return json_response({"changes": [], "cursor": query["after"], "more": False})


def status_view(
    order_id: str, status: str, version: int, client_id: str = "rest-1"
) -> dict[str, Any]:
    """One order of eda's ``/v1/orders/statuses`` answer."""
    return {"order_id": order_id, "client_id": client_id, "status": status, "version": version}


def change(order_id: str, status: str, version: int, client_id: str = "rest-1") -> dict[str, Any]:
    """One change of eda's feed."""
    return {**status_view(order_id, status, version, client_id), "change_tx": TAIL_TX + version}
