"""iiko-integration's rules, free of HTTP and I/O.

What the POS is told about an order, what the bill says and which restaurant
may take which bill are decided here; ``service`` only fetches the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

from pydantic import SecretStr

from qrpay.eda.schemas import Bill, OrderStatus
from qrpay.iiko_integration.schemas import IikoCode, PosStatus
from qrpay.kernel import deeplink
from qrpay.kernel.errors import InvalidInput, QrpayError
from qrpay.restaurants import Restaurant, RestaurantSections

FALLBACK_LANGUAGE = "ru"
MAX_APP_PARAM_LENGTH = 128


# The POS only needs to know whether to keep waiting: a payment under way is still waiting.
_POS_STATUS: dict[OrderStatus, PosStatus] = {
    OrderStatus.WAITING: PosStatus.WAITING,
    OrderStatus.PAYMENT_IN_PROGRESS: PosStatus.WAITING,
    OrderStatus.PAYED: PosStatus.PAYED,
    OrderStatus.CANCELED: PosStatus.CANCELED,
    OrderStatus.CLOSED: PosStatus.CLOSED,
}


class StatusOf(Protocol):
    """Any of eda's views of an order that name its restaurant and status."""

    @property
    def client_id(self) -> str: ...

    @property
    def status(self) -> OrderStatus: ...


def pos_status(view: StatusOf | None, client_id: str) -> PosStatus:
    # Another restaurant's order looks exactly like an unknown one, so ids cannot be probed.
    if view is None or view.client_id != client_id:
        return PosStatus.NOT_FOUND
    return _POS_STATUS.get(view.status, PosStatus.NOT_FOUND)


def pos_statuses(
    requested: Iterable[str], by_id: Mapping[str, StatusOf], client_id: str
) -> list[tuple[str, PosStatus]]:
    """One status per requested id, in request order, duplicates kept."""
    return [(order_id, pos_status(by_id.get(order_id), client_id)) for order_id in requested]


def bill_text(templates: Mapping[str, str], restaurant: Restaurant) -> str:
    template = templates.get(restaurant.language) or templates[FALLBACK_LANGUAGE]
    return template.format(rate=restaurant.rate_text)


def qr_link(base: str, hmac_keys: tuple[SecretStr, ...], order_id: str, client_id: str) -> str:
    if not hmac_keys:
        # A misconfigured secdist; printing an unsigned code would be worse than failing.
        raise QrpayError("no hmac key in secdist", code=IikoCode.HMAC_KEY_MISSING)
    return deeplink.build_link(base, order_id, deeplink.sign(hmac_keys[0], order_id, client_id))


def order_restaurant(config: RestaurantSections, client_id: str) -> Restaurant:
    restaurant = config.restaurant(client_id)
    if restaurant is None:
        raise InvalidInput(f"unknown restaurant {client_id!r}", code=IikoCode.UNKNOWN_RESTAURANT)
    if not restaurant.enabled:
        raise InvalidInput(
            f"restaurant {client_id!r} is disabled", code=IikoCode.RESTAURANT_DISABLED
        )
    return restaurant


def check_bill(restaurant: Restaurant, bill: Bill, max_amount: Decimal) -> None:
    """The restaurant-specific rules; the shape and the amounts' format are the schema's."""
    if bill.currency not in restaurant.currencies:
        raise InvalidInput(
            f"restaurant {restaurant.client_id!r} does not accept {bill.currency}",
            code=IikoCode.CURRENCY_NOT_ACCEPTED,
        )
    if bill.total > max_amount:
        raise InvalidInput(
            f"amount is above the maximum {max_amount}", code=IikoCode.AMOUNT_TOO_LARGE
        )


def zone_restaurants(config: RestaurantSections, zone: str) -> list[Restaurant]:
    return [r for r in config.restaurants if r.enabled and r.zone == zone]
