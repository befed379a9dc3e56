"""The signed deep link printed in the QR code (shared by the signer and the verifiers).

``hmac = HMAC_SHA256(key, "<order_id>:<client_id>")`` in hex. The first key
in secdist signs; every key verifies, so keys can be rotated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlencode

from pydantic import SecretStr


def sign(key: SecretStr | str, order_id: str, client_id: str) -> str:
    secret = key.get_secret_value() if isinstance(key, SecretStr) else key
    message = f"{order_id}:{client_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(keys: Sequence[SecretStr | str], order_id: str, client_id: str, signature: str) -> bool:
    presented = signature.lower()
    # compare_digest raises TypeError on non-ASCII text: that was a 500 telling that the order
    # exists where any wrong signature is a 404. A real signature is hex, so ASCII.
    if len(presented) != 64 or not presented.isascii():
        return False
    ok = False
    for key in keys:
        # Check every key (no early exit) so the time taken says nothing about which matched.
        ok |= hmac.compare_digest(sign(key, order_id, client_id), presented)
    return ok


def build_link(base: str, order_id: str, signature: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode({'order_id': order_id, 'hmac': signature})}"
