"""The load generators' lean HTTP/1.1 client, against a scripted in-memory server."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from qrpay_tools.bench import wire

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": "b"}\n'


class FakeServer:
    """Answers each request written to one of its connections with the next scripted reply:
    bytes (delivered in 7-byte pieces after ``delay``), None (never answers) or "close"."""

    def __init__(self, *replies: bytes | str | None, delay: float = 0.0) -> None:
        self.replies: deque[bytes | str | None] = deque(replies)
        self.requests: list[bytes] = []
        self.transports: list[FakeTransport] = []
        self.delay = delay

    async def connect(self, host: str, port: int) -> wire.Connection:
        connection = wire.Connection()
        transport = FakeTransport(self, connection)
        self.transports.append(transport)
        connection.connection_made(transport)  # type: ignore[arg-type]
        return connection


class FakeTransport:
    def __init__(self, server: FakeServer, connection: wire.Connection) -> None:
        self.server = server
        self.connection = connection
        self.closed = False

    def write(self, data: bytes) -> None:
        self.server.requests.append(data)
        reply = self.server.replies.popleft()
        loop = asyncio.get_running_loop()
        if reply == "close":
            self.close()
        elif isinstance(reply, bytes):
            for at in range(0, len(reply), 7):
                piece = reply[at : at + 7]
                loop.call_later(self.server.delay, self.connection.data_received, piece)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.connection.connection_lost, None)


def client(server: FakeServer, connections: int = 4) -> wire.Client:
    return wire.Client(
        "http://127.0.0.1:8081",
        connections=connections,
        headers={"X-API-Key": "k"},
        connect=server.connect,
    )


async def test_each_request_carries_the_ticket_the_signer_hands_at_that_moment() -> None:
    """A run may outlast a ticket: the signer renews it, and the next request has the new one."""
    server = FakeServer(OK, OK)
    tickets = iter(["first", "renewed"])
    current = next(tickets)
    http = wire.Client(
        "http://127.0.0.1:8081", connections=1, ticket=lambda: current, connect=server.connect
    )
    await http.request("GET", "/ping", timeout=1)
    current = next(tickets)
    await http.request("GET", "/ping", timeout=1)
    first, second = server.requests
    assert b"\r\nX-Ya-Service-Ticket: first\r\n" in first
    assert b"\r\nX-Ya-Service-Ticket: renewed\r\n" in second


async def test_a_requests_own_headers_go_with_it_only() -> None:
    server = FakeServer(OK, OK)
    http = client(server)
    await http.request(
        "POST", "/share", body=b"{}", headers={"X-Idempotency-Token": "t1"}, timeout=1
    )
    await http.request("POST", "/share", body=b"{}", timeout=1)
    first, second = server.requests
    assert first.startswith(b"POST /share HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nX-API-Key: k\r\n")
    assert b"\r\nX-Idempotency-Token: t1\r\n" in first
    assert b"X-Idempotency-Token" not in second


async def test_a_response_in_pieces_is_parsed_and_the_connection_kept_alive() -> None:
    server = FakeServer(OK, OK)
    http = client(server)
    first = await http.request("POST", "/orders/list", body=b"{}", timeout=1)
    second = await http.request("GET", "/ping", params={"a": "1 2"}, timeout=1)
    assert (first.status, first.body) == (200, b'{"a": "b"}\n')
    assert first.headers["content-type"] == "application/json"
    assert second.status == 200
    assert len(server.transports) == 1
    post, get = server.requests
    assert post.startswith(
        b"POST /orders/list HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nX-API-Key: k\r\n"
    )
    assert post.endswith(b"Content-Length: 2\r\n\r\n{}")
    assert get.startswith(b"GET /ping?a=1+2 HTTP/1.1\r\n")
    assert b"Content-Length" not in get


async def test_a_chunked_body_is_put_together() -> None:
    chunked = (
        b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    http = client(FakeServer(chunked, OK))
    answer = await http.request("GET", "/", timeout=1)
    assert (answer.status, answer.body) == (502, b"hello world")
    assert (await http.request("GET", "/", timeout=1)).status == 200  # the same connection


async def test_a_body_without_length_ends_when_the_server_closes() -> None:
    server = FakeServer(b'HTTP/1.0 503 Service Unavailable\r\n\r\n{"code": "overloaded"}')
    http = client(server)
    request = asyncio.ensure_future(http.request("GET", "/", timeout=1))
    await asyncio.sleep(0.01)
    assert not request.done()
    server.transports[0].close()
    answer = await request
    assert (answer.status, answer.body) == (503, b'{"code": "overloaded"}')


async def test_at_most_the_limit_of_connections_and_the_rest_wait() -> None:
    server = FakeServer(*[OK] * 6, delay=0.01)
    http = client(server, connections=2)
    answers = await asyncio.gather(*(http.request("GET", "/", timeout=1) for _ in range(6)))
    assert [a.status for a in answers] == [200] * 6
    assert len(server.transports) == 2


async def test_a_timeout_closes_its_connection_and_frees_the_slot() -> None:
    server = FakeServer(None, OK)
    http = client(server, connections=1)
    with pytest.raises(TimeoutError):
        await http.request("GET", "/slow", timeout=0.05)
    assert server.transports[0].closed
    # The waiting time counts too, and the slot went to the next request.
    assert (await http.request("GET", "/", timeout=1)).status == 200
    assert len(server.transports) == 2


async def test_waiting_for_a_connection_counts_in_the_timeout() -> None:
    server = FakeServer(None, OK)
    http = client(server, connections=1)
    slow = asyncio.ensure_future(http.request("GET", "/slow", timeout=0.2))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await http.request("GET", "/", timeout=0.05)  # never got the one connection
    with pytest.raises(TimeoutError):
        await slow
    assert (await http.request("GET", "/", timeout=1)).status == 200


async def test_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one() -> None:
    server = FakeServer(OK, "close", OK)
    http = client(server)
    await http.request("GET", "/", timeout=1)
    assert (await http.request("GET", "/", timeout=1)).status == 200
    assert len(server.transports) == 2


async def test_a_fresh_connection_closed_at_once_is_an_error() -> None:
    http = client(FakeServer("close"))
    with pytest.raises(ConnectionError):
        await http.request("GET", "/", timeout=1)


async def test_connection_close_is_not_kept() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    server = FakeServer(closing, OK)
    http = client(server)
    await http.request("GET", "/", timeout=1)
    await http.request("GET", "/", timeout=1)
    assert len(server.transports) == 2
    assert server.transports[0].closed
