"""The POS's WebSocket stream (``GET /orders/stream``): the framework side of ``push``.

Messages, JSON text, server to POS:
  ``{"type": "change", "id", "client_id", "status", "cursor"}`` for every change of the
  key's restaurants after the cursor, in feed order;
  ``{"type": "ping", "cursor"}`` after ``push.heartbeat_ms`` without a change (the first
  one sooner, at a random point of the first period, so POS that connected together do not
  ping together); the cursor is where to resume (every change before it was sent).
POS to server: ``{"type": "pong"}`` for every ping (any message counts); a POS silent for
``push.client_timeout_ms`` is closed with code 4408.

Refused at the handshake, before any message: a missing or unknown key (401), a
restaurant the key is not for (403), a malformed cursor (400), and an instance not yet
following eda (503), with the usual error body. After that the server closes with 1013
when the POS fell ``push.queue_size`` changes behind, and with 1011 when eda could not
be read to catch up; either way the POS reconnects with ``after`` set to its last cursor.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from qrpay.iiko_integration.push import Pushed, Subscription, key_text
from qrpay.iiko_integration.service import IikoService
from qrpay.kernel.errors import QrpayError
from qrpay.kernel.http import error_response

API_KEY_HEADER = "X-API-Key"
# A slow consumer: fell too far behind; resume from the last cursor (RFC 6455 "try again later").
CLOSE_SLOW_CONSUMER = 1013
# Could not catch up from eda.
CLOSE_UNAVAILABLE = 1011
# No message (pong) from the POS within push.client_timeout_ms.
CLOSE_CLIENT_SILENT = 4408


def _change(pushed: Pushed) -> bytes:
    return orjson.dumps(
        {
            "type": "change",
            "id": pushed.order_id,
            "client_id": pushed.client_id,
            "status": pushed.status,
            "cursor": pushed.cursor,
        }
    )


async def serve_stream(websocket: WebSocket, service: IikoService) -> None:
    query = websocket.query_params
    key = websocket.headers.get(API_KEY_HEADER)
    try:
        allowed = service.authenticate(key)
        subscription, backlog = await service.open_stream(
            allowed, query.get("client_id"), query.get("after"), key=key or ""
        )
    except QrpayError as error:
        await websocket.send_denial_response(error_response(error))
        return
    try:
        await websocket.accept()
        await _stream(websocket, service, subscription, backlog)
    except WebSocketDisconnect:
        pass
    finally:
        service.close_stream(subscription)


async def _stream(
    websocket: WebSocket, service: IikoService, subscription: Subscription, backlog: list[Pushed]
) -> None:
    heartbeats = service.heartbeats
    heard_at = heartbeats.clock()

    async def listen() -> None:
        # The POS's pongs (and anything else it sends) only prove it is there.
        nonlocal heard_at
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                heard_at = heartbeats.clock()
        finally:
            subscription.wake()  # the POS went away: the stream's loop ends

    # One task and one wait per connection for its whole life: the loop below waits on the
    # subscription alone, which a change, a heartbeat or the POS leaving wakes.
    listening = asyncio.create_task(listen())
    try:
        # Changes up to ``sent`` are with the POS: the live queue's copies are skipped.
        sent = subscription.floor
        for pushed in backlog:
            await websocket.send_text(_change(pushed).decode())
            sent = max(sent, pushed.key)
        if backlog:
            heartbeats.sent_change(subscription)
        heartbeats.add(subscription)
        while True:
            await subscription.ready.wait()
            if listening.done():
                listening.result()  # the POS went away: its disconnect ends the stream
            if subscription.overflowed:
                await websocket.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume from cursor")
                return
            changes = subscription.take()
            ping_due = subscription.take_ping()
            changed = False
            for pushed in changes:
                if pushed.key > sent:
                    await websocket.send_text(_change(pushed).decode())
                    sent = pushed.key
                    changed = True
            if changed:
                heartbeats.sent_change(subscription)
            elif ping_due:
                config = service.push_config()
                if heartbeats.clock() - heard_at > config.client_timeout_ms / 1000:
                    await websocket.close(CLOSE_CLIENT_SILENT, "no pong")
                    return
                # Everything up to the buffer's end is sent: the POS may resume there.
                position = service.hub.position or sent
                ping = {"type": "ping", "cursor": key_text(max(sent, position))}
                await websocket.send_text(orjson.dumps(ping).decode())
    finally:
        listening.cancel()
        with contextlib.suppress(BaseException):
            await listening
