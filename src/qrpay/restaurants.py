"""The restaurants and how their cashback is paid: the config sections several services
read (iiko-integration prints a restaurant's bills, payments-eda pays its cashback).

The product's, not the kernel's: ``runner.config`` composes them into the config model.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from qrpay.kernel.config import Strict
from qrpay.kernel.money import decimal_places, is_known_currency, minor_units

Percent = Annotated[Decimal, Field(ge=0, le=100)]


class Restaurant(Strict):
    client_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=256)
    zone: str = Field(min_length=1, max_length=64)
    cashback_rate: Percent
    cashback_cap: Decimal | None = Field(default=None, ge=0)
    # The tip percentages the payer page offers on a share (any amount may be typed too).
    tip_percents: tuple[Annotated[int, Field(ge=1, le=100)], ...] = (5, 10, 15)
    currencies: tuple[str, ...] = ("RUB",)
    enabled: bool = True
    language: str = "ru"
    address: str | None = None

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if not is_known_currency(c)]
        if unknown:
            raise ValueError(f"unknown currencies: {unknown}")
        if not value:
            raise ValueError("a restaurant accepts at least one currency")
        return value

    @property
    def rate_text(self) -> str:
        from qrpay.kernel.money import format_plain

        return f"{format_plain(self.cashback_rate)}%"


class CashbackRules(Strict):
    # Decimal places the cashback amount is rounded down to (0 = whole units).
    rounding_places: int = Field(default=0, ge=0, le=2)
    default_cap: Decimal | None = Field(default=None, ge=0)


class RestaurantSections(Strict):
    """The config's ``restaurants`` and ``cashback`` sections, checked together."""

    restaurants: tuple[Restaurant, ...] = ()
    cashback: CashbackRules = CashbackRules()

    @field_validator("restaurants")
    @classmethod
    def _unique_restaurants(cls, value: tuple[Restaurant, ...]) -> tuple[Restaurant, ...]:
        ids = [r.client_id for r in value]
        if len(ids) != len(set(ids)):
            raise ValueError("restaurant client_ids must be unique")
        return value

    @model_validator(mode="after")
    def _cashback_representable(self) -> Self:
        """Cashback is paid in a restaurant's currency: it is rounded to no finer a place than
        the coarsest minor unit any restaurant accepts (JPY has none), and every cap is a
        whole number of those places (else a capped cashback would be rounded below its cap)."""
        places = self.cashback.rounding_places
        for restaurant in self.restaurants:
            for currency in restaurant.currencies:
                if places > minor_units(currency):
                    raise ValueError(
                        f"cashback.rounding_places {places} is finer than {currency}'s"
                        f" {minor_units(currency)} minor-unit places (restaurant"
                        f" {restaurant.client_id!r} accepts {currency})"
                    )
        caps = [("cashback.default_cap", self.cashback.default_cap)]
        caps += [(f"{r.client_id!r} cashback_cap", r.cashback_cap) for r in self.restaurants]
        for name, cap in caps:
            if cap is not None and decimal_places(cap) > places:
                raise ValueError(
                    f"{name} {cap} has more decimal places than cashback.rounding_places {places}"
                )
        return self

    def restaurant(self, client_id: str) -> Restaurant | None:
        return self.restaurants_by_id.get(client_id)

    @cached_property
    def restaurants_by_id(self) -> dict[str, Restaurant]:
        return {r.client_id: r for r in self.restaurants}
