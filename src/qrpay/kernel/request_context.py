"""The request id: taken from ``X-Request-Id`` or made, carried into logs, downstream calls
and the queue tasks a request puts (kernel/queue: the task's run binds it again)."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

REQUEST_ID_HEADER = "X-Request-Id"
_request_id: ContextVar[str | None] = ContextVar("qrpay_request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> object:
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


def new_request_id() -> str:
    return os.urandom(16).hex()


@contextmanager
def bound_request_id(value: str | None) -> Iterator[str]:
    """Within the block the current request id is ``value`` (a new one when None)."""
    request_id = value or new_request_id()
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def add_request_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every log line of a request carries its id."""
    request_id = _request_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def accept_request_id(header_value: str | None) -> str:
    """Keep a caller's id if it is sane; otherwise make one (ids end up in logs)."""
    if header_value and 0 < len(header_value) <= 128 and header_value.isprintable():
        return header_value
    return new_request_id()
