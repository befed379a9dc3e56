"""``pos-sim --push``: follow the order over iiko-integration's WebSocket stream instead of
polling (``GET /orders/stream``), printing each status change as it arrives.

The stream is subscribed before the order's status is read once, so a change made in
between is not lost; after a dropped connection it resumes from the last cursor the
server sent (a change's, or a ping's), so nothing is missed or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import aiohttp
from rich.console import Console

from qrpay_tools.pos_sim.client import PosClient, connection_error_line
from qrpay_tools.pos_sim.errors import PosSimError

# CLOSED: the waiter closed it (a split bill partly paid in qrpay, the rest outside).
FINAL_STATUSES = ("PAYED", "CANCELED", "CLOSED", "NOT_FOUND")
# Reconnects in a row without a message before the session gives up.
MAX_RECONNECTS = 5
PONG = '{"type":"pong"}'


def stream_url(base_url: str) -> str:
    """The WebSocket address of the POS stream of iiko-integration at ``base_url``."""
    return base_url.replace("http", "ws", 1) + "/orders/stream"


async def stream_messages(
    ws: aiohttp.ClientWebSocketResponse,
) -> AsyncGenerator[dict[str, Any], None]:
    """The stream's messages, changes and pings, until it closes. Each ping is answered as
    it arrives, so a POS that reads the stream is never closed as silent."""
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return
        data: dict[str, Any] = json.loads(message.data)
        if data.get("type") == "ping":
            await ws.send_str(PONG)
        yield data


async def follow_by_push(
    client: PosClient,
    client_id: str,
    order_id: str,
    timeout_seconds: float,
    console: Console,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    on_change: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """The order's final status, or its last one when ``timeout_seconds`` passed.

    ``on_change`` runs after every change of the order (a split bill's payments move its
    version without changing the status the POS sees)."""
    deadline = monotonic() + timeout_seconds
    cursor: str | None = None
    status = "WAITING"
    failures = 0
    url = stream_url(client.base_url)
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"client_id": client_id, **({"after": cursor} if cursor else {})}
            try:
                async with (
                    session.ws_connect(
                        url, headers={"X-API-Key": client.api_key}, params=params
                    ) as ws,
                    contextlib.aclosing(stream_messages(ws)) as messages,
                ):
                    if cursor is None:
                        # Subscribed: a status read now misses nothing that follows.
                        status = await client.order_status(client_id, order_id)
                        console.print(f"order {order_id}: {status}", markup=False)
                        if status in FINAL_STATUSES:
                            return status
                    while (left := deadline - monotonic()) > 0:
                        try:
                            async with asyncio.timeout(left):
                                data = await anext(messages, None)
                        except TimeoutError:
                            return status
                        if data is None:
                            break  # closed: resume from the cursor
                        failures = 0
                        cursor = str(data.get("cursor") or cursor)
                        if data.get("type") == "change" and data.get("id") == order_id:
                            if on_change is not None:
                                await on_change()
                            # A payment under way is WAITING to the POS too: print news only.
                            if str(data["status"]) != status:
                                status = str(data["status"])
                                console.print(f"order {order_id}: {status}", markup=False)
                            if status in FINAL_STATUSES:
                                return status
                    else:
                        return status
                    console.print(
                        f"stream closed ({ws.close_code}); resuming from {cursor}", markup=False
                    )
            except aiohttp.WSServerHandshakeError as exc:
                raise PosSimError(f"error: the stream was refused: HTTP {exc.status}") from None
            except (aiohttp.ClientError, OSError) as exc:
                console.print(connection_error_line(client.base_url, exc), markup=False)
            failures += 1
            if failures >= MAX_RECONNECTS or monotonic() >= deadline:
                raise PosSimError(f"error: the stream dropped {failures} times in a row")
            await asyncio.sleep(min(0.5 * failures, 2.0))
