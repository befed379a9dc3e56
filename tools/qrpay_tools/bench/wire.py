"""A lean HTTP/1.1 client for the load generators.

Keep-alive connections to one host, at most ``connections`` of them, one request at a
time on each (no pipelining); bodies by Content-Length, chunked, or until the server
closes. Requests beyond the limit wait for a connection, and the timeout covers the
wait, as aiohttp's total timeout does.

Why not aiohttp: its client costs about 0.5 ms of CPU per request (measured here, uvloop),
so on a 2-core machine shared with the services the generator itself would take over a
core at 3,000 requests a second and become what is measured. This costs a fraction of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlencode, urlsplit

from qrpay.kernel.tickets import TICKET_HEADER


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Connection(asyncio.Protocol):
    """One keep-alive connection: a request written, its response parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.used = False
        self._until_close: tuple[int, dict[str, str], int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            parsed = self._parse()
            if parsed is not None:
                self.waiter.set_result(parsed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self._until_close is not None:
            status, headers, start = self._until_close
            self.waiter.set_result(Response(status, headers, bytes(self.buffer[start:])))
        else:
            self.waiter.set_exception(ConnectionResetError("the server closed the connection"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> Response | None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        lines = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        if status in (204, 304) or 100 <= status < 200:
            del self.buffer[:start]
            return Response(status, headers, b"")
        length = headers.get("content-length")
        if length is not None:
            end = start + int(length)
            if len(self.buffer) < end:
                return None
            body = bytes(self.buffer[start:end])
            del self.buffer[:end]
            return Response(status, headers, body)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunked = _dechunk(self.buffer, start)
            if chunked is None:
                return None
            body, end = chunked
            del self.buffer[:end]
            return Response(status, headers, body)
        self._until_close = (status, headers, start)
        return None

    async def exchange(self, data: bytes) -> Response:
        assert self.transport is not None
        self.used = True
        self._until_close = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self.waiter
        finally:
            self.waiter = None


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end) of a complete chunked body from ``start``, or None if more must come."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", at)
            # No trailers: the last chunk is followed by one empty line.
            while trailer_end >= 0 and trailer_end != at:
                at = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", at)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 2
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


Connect = Callable[[str, int], Awaitable[Connection]]


async def _open_tcp(host: str, port: int) -> Connection:
    _, connection = await asyncio.get_running_loop().create_connection(Connection, host, port)
    return connection


class Client:
    """Requests to one ``http://host:port`` over at most ``connections`` keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        headers: dict[str, str] | None = None,
        ticket: Callable[[], str] | None = None,
        connect: Connect | None = None,
    ) -> None:
        """``ticket``: the service ticket to send with each request, asked for each time
        (a signer hands the same one until it renews it: a run may outlast a ticket)."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{base_url}: only http://host[:port] is supported")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.limit = connections
        self._fixed = f"Host: {parts.netloc}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in (headers or {}).items()
        )
        self._ticket = ticket
        self._idle: list[Connection] = []
        self._open = 0  # connections open or being opened, and slots handed to a waiter
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._connect = connect or _open_tcp

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float,
    ) -> Response:
        """One request, with ``headers`` besides the client's own; raises TimeoutError past
        ``timeout`` (the wait for a connection included) and ConnectionError (OSError) when
        the connection breaks."""
        if params:
            path = f"{path}?{urlencode(params)}"
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        if self._ticket is not None:
            head += f"{TICKET_HEADER}: {self._ticket()}\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        data = head.encode("latin-1") + b"\r\n" + body
        async with asyncio.timeout(timeout):
            for attempt in (1, 2):
                connection = await self._acquire()
                reused = connection.used
                reusable = False
                try:
                    response = await connection.exchange(data)
                    reusable = response.headers.get("connection", "").lower() != "close"
                    return response
                except ConnectionError:
                    # A kept-alive connection the server closed meanwhile: once more on a new one.
                    if not reused or attempt == 2:
                        raise
                finally:
                    if not reusable:
                        connection.close()
                    self._release(connection if reusable and not connection.closed else None)
        raise AssertionError("unreachable")

    async def _acquire(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open -= 1
        if self._open >= self.limit:
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release(waiter.result())
                raise
            if handed is not None and not handed.closed:
                return handed
            # A free slot (or a connection closed on the way): open a new one in it.
        else:
            self._open += 1
        try:
            connection = await self._connect(self.host, self.port)
        except BaseException:
            self._release(None)
            raise
        return connection

    def _release(self, connection: Connection | None) -> None:
        """Give a connection, or the slot of a closed one (None), to the first live waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
