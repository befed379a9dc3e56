"""Probing local ports (stdlib only)."""

from __future__ import annotations

import random
import socket
import time


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(count: int, *, low: int = 20000, high: int = 32000, tries: int = 50) -> int:
    """A base port with ``count`` consecutive free ports after it (probing random bases)."""
    for _ in range(tries):
        base = random.randrange(low, high - count)
        if all(port_is_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def free_port() -> int:
    """A port free right now (the system's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
