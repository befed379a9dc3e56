"""POS authentication: an API key from secdist, each allowed for a set of restaurants."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from hmac import compare_digest

from qrpay.iiko_integration.schemas import IikoCode
from qrpay.kernel.config import Secdist
from qrpay.kernel.errors import Forbidden, Unauthenticated

_Table = tuple[tuple[bytes, frozenset[str]], ...]


def _digest(text: str) -> bytes:
    # Comparing fixed-size digests keeps the key's length out of the timing as well.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


class ApiKeyAuth:
    def __init__(self, secdist: Callable[[], Secdist]) -> None:
        self._secdist = secdist
        self._cached_for: Secdist | None = None
        self._table: _Table = ()

    def _keys(self) -> _Table:
        secdist = self._secdist()
        # Secdist is replaced as a whole on reload, so its identity tells when to rehash.
        if secdist is not self._cached_for:
            self._table = tuple(
                (_digest(k.key.get_secret_value()), k.client_ids) for k in secdist.api_keys
            )
            self._cached_for = secdist
        return self._table

    def authenticate(self, presented: str | None) -> frozenset[str]:
        """The client_ids the presented key may act for; 401 for a missing or unknown key."""
        candidate = _digest(presented or "")
        allowed: frozenset[str] | None = None
        for digest, client_ids in self._keys():
            # Every key is compared, with no early exit, so timing does not tell which one matched.
            if compare_digest(digest, candidate):
                allowed = client_ids
        if not presented or allowed is None:
            raise Unauthenticated(
                "a valid X-API-Key header is required", code=IikoCode.UNAUTHORIZED
            )
        return allowed


def authorize(allowed: frozenset[str], client_id: str) -> None:
    if client_id not in allowed:
        raise Forbidden(
            "this API key is not allowed for this client_id", code=IikoCode.FORBIDDEN_CLIENT
        )
