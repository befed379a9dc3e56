from __future__ import annotations

from typing import Any

import httpx

from tests.support.tickets import GuardedCall

TOKEN_ROUTE = "/v1/payment-methods/{method_id}"


def card(user_id: str = "u1", **overrides: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "type": "card",
        "token": "tok_visa_ok",
        "system": "visa",
        "last4": "4242",
        "expiry_month": 12,
        "expiry_year": 2030,
        "available": True,
        **overrides,
    }


def token_call(client: httpx.AsyncClient) -> GuardedCall:
    """payments-eda's read of card-1's token: the call a forged ticket would make."""
    return GuardedCall(
        "cardstorage",
        client,
        "GET",
        "/v1/payment-methods/card-1",
        TOKEN_ROUTE,
        params={"user_id": "u1"},
    )
