"""The deep link printed by the POS: ``<base>?order_id=<id>&hmac=<hex>`` (SPEC 4.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from qrpay_tools.guest.errors import GuestError

_HMAC = re.compile(r"^[0-9a-fA-F]{64}$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class OrderLink:
    order_id: str
    hmac: str


def parse_link(text: str) -> OrderLink:
    """Accept the whole link, ``Link: <url>`` as pos-sim prints it, or just its query string."""
    raw = text.strip().removeprefix("Link:").strip().strip("'\"<>")
    if not raw:
        raise GuestError("the link is empty; pass the Link: line pos-sim printed")
    query = urlsplit(raw).query if "?" in raw or "://" in raw else raw
    params = parse_qs(query, keep_blank_values=True)
    order_ids = params.get("order_id", [])
    signatures = params.get("hmac", [])
    if len(order_ids) != 1 or len(signatures) != 1:
        raise GuestError(
            f"not a qrpay order link (it needs one order_id and one hmac): {raw[:200]}"
        )
    order_id, signature = order_ids[0].strip(), signatures[0].strip()
    if not _ORDER_ID.match(order_id):
        raise GuestError(f"the link's order_id is not valid: {order_id[:80]!r}")
    if not _HMAC.match(signature):
        raise GuestError("the link's hmac is not 64 hex digits; copy the whole link")
    return OrderLink(order_id=order_id, hmac=signature.lower())
