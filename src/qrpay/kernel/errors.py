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
    kind: ErrorKind = ErrorKind.INTERNAL
    default_code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidInput(QrpayError):
    kind = ErrorKind.INVALID
    default_code = "invalid_input"


class Unauthenticated(QrpayError):
    kind = ErrorKind.UNAUTHENTICATED
    default_code = "unauthenticated"


class Forbidden(QrpayError):
    kind = ErrorKind.FORBIDDEN
    default_code = "forbidden"


class NotFound(QrpayError):
    kind = ErrorKind.NOT_FOUND
    default_code = "not_found"


class Conflict(QrpayError):
    kind = ErrorKind.CONFLICT
    default_code = "conflict"


class PayloadTooLarge(QrpayError):
    kind = ErrorKind.TOO_LARGE
    default_code = "payload_too_large"


class RateLimited(QrpayError):
    kind = ErrorKind.RATE_LIMITED
    default_code = "rate_limited"


class DependencyUnavailable(QrpayError):
    kind = ErrorKind.UNAVAILABLE
    default_code = "dependency_unavailable"


_BY_KIND: dict[ErrorKind, type[QrpayError]] = {
    cls.kind: cls
    for cls in (
        InvalidInput,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        DependencyUnavailable,
        QrpayError,
    )
}


def error_for_kind(kind: ErrorKind, code: str, message: str) -> QrpayError:
    """Rebuild an error of the right class, e.g. from a downstream's answer."""
    return _BY_KIND.get(kind, QrpayError)(message, code=code)
