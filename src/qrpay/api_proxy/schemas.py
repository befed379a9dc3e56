"""api-proxy's own wire types (the forwarded ones are payments-eda's and iiko-integration's)."""

from __future__ import annotations

from qrpay.kernel.schemas import WireModel


class SessionView(WireModel):
    """Who the page's caller is signed in as (the cookie itself is HttpOnly)."""

    user_id: str | None
