from __future__ import annotations

from typing import Any


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
