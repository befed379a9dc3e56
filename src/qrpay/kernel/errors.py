"""One error type for the whole system.

An error carries a stable snake_case ``code`` (what clients branch on), a
human ``message`` and a ``kind``. The kind says what went wrong in words the
domain understands; only ``kernel.http`` turns kinds into HTTP statuses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class QrpayError(Exception):
    """The base of every error; a subclass names its ``kind`` and default code in its header.

    ``code`` may be a service's ``StrEnum`` member (its wire text is the same string).
    """

    kind: ErrorKind = ErrorKind.INTERNAL
    default_code: str = "internal_error"

    def __init_subclass__(
        cls, *, kind: ErrorKind | None = None, default_code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if default_code is not None:
            cls.default_code = default_code
        if kind is not None:
            cls.kind = kind
            _BY_KIND.setdefault(kind, cls)

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        # A plain string on the wire and in logs, whether given as text or as a StrEnum member.
        self.code: str = str(code) if code else self.default_code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


_BY_KIND: dict[ErrorKind, type[QrpayError]] = {}


class InvalidInput(QrpayError, kind=ErrorKind.INVALID, default_code="invalid_input"): ...


class Unauthenticated(
    QrpayError, kind=ErrorKind.UNAUTHENTICATED, default_code="unauthenticated"
): ...


class Forbidden(QrpayError, kind=ErrorKind.FORBIDDEN, default_code="forbidden"): ...


class NotFound(QrpayError, kind=ErrorKind.NOT_FOUND, default_code="not_found"): ...


class Conflict(QrpayError, kind=ErrorKind.CONFLICT, default_code="conflict"): ...


class PayloadTooLarge(QrpayError, kind=ErrorKind.TOO_LARGE, default_code="payload_too_large"): ...


class RateLimited(QrpayError, kind=ErrorKind.RATE_LIMITED, default_code="rate_limited"):
    """Too many requests: the answer says in ``Retry-After`` when the next one is let in."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, code=code, details={"retry_after": retry_after})
        self.retry_after = retry_after


class DependencyUnavailable(
    QrpayError, kind=ErrorKind.UNAVAILABLE, default_code="dependency_unavailable"
): ...


def error_for_kind(kind: ErrorKind, code: str, message: str) -> QrpayError:
    """Rebuild an error of the right class, e.g. from a downstream's answer."""
    return _BY_KIND.get(kind, QrpayError)(message, code=code)
