"""Bodies several tiers send or serve: a POS order's bill (SPEC 4.3) and the payer's saved cards."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qrpay.restaurants import Restaurant


def bill(amount: str, *elements: tuple[str, str], currency: str = "RUB") -> dict[str, Any]:
    """A bill: its total and its ``(name, amount)`` lines."""
    lines = [{"name": name, "amount": line} for name, line in elements]
    return {"currency": currency, "amount": amount, "elements": lines}


def order_body(
    internal_order_id: str, amount: str, *elements: tuple[str, str], client_id: str = "rest-1"
) -> dict[str, Any]:
    """A ``POST /orders`` body as the restaurant's POS sends it."""
    return {
        "client_id": client_id,
        "internal_order_id": internal_order_id,
        "bill": bill(amount, *elements),
    }


def saved_cards() -> list[dict[str, Any]]:
    """The payer's cards as payments-eda lists them: one that pays, one declined, one expired."""
    return [
        card("card-ok", "visa", "4242", "12/30"),
        card("card-declined", "visa", "9995", "06/29"),
        card("card-expired", "mastercard", "0119", "01/24", available=False),
    ]


def card(
    card_id: str, system: str, last4: str, expiry: str, *, available: bool = True
) -> dict[str, Any]:
    return {
        "id": card_id,
        "type": "card",
        "system": system,
        "mask": f"•••• {last4}",
        "expiry": expiry,
        "available": available,
    }


def restaurant(rate: str, cap: str | None = None) -> Restaurant:
    """rest-1, a Moscow café giving ``rate`` percent cashback, at most ``cap`` an order."""
    return Restaurant(
        client_id="rest-1",
        name="Café",
        zone="moscow",
        cashback_rate=Decimal(rate),
        cashback_cap=None if cap is None else Decimal(cap),
    )
