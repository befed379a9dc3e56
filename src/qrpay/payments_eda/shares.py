"""What a guest's share adds and earns: the tip and the cashback (issue 12). Pure.

- A tip is none, a percentage the restaurant offers, or an amount. It is held and cleared
  with the share, but it is not part of the bill: it earns no cashback and does not count
  towards what is left.
- Cashback per share follows the whole-bill rules (rate, rounding down, the restaurant's cap
  or the default one) on the share's bill part. The cap is for the order as a whole and is
  shared first come, first served: a share earns at most what the shares accrued before it
  left under the cap. Rounding each share down never adds up to more than the whole bill
  would have earned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal

from qrpay.kernel.errors import InvalidInput
from qrpay.kernel.money import quantize, round_down
from qrpay.payments_eda.domain import cashback_amount
from qrpay.payments_eda.schemas import PaymentsCode
from qrpay.restaurants import CashbackRules, Restaurant


def tip_amount(
    share: Decimal,
    currency: str,
    *,
    percent: Decimal | None = None,
    amount: Decimal | None = None,
    offered_percents: Collection[Decimal] = (),
    max_percent: Decimal = Decimal(100),
) -> Decimal:
    """The tip on a share: a percentage of it (rounded half up) or an amount, never both."""
    if percent is not None and amount is not None:
        raise InvalidInput(
            "give a tip percent or a tip amount, not both", code=PaymentsCode.INVALID_TIP
        )
    if percent is not None:
        if percent not in offered_percents:
            raise InvalidInput(
                f"the restaurant offers tips of {sorted(offered_percents)} percent",
                code=PaymentsCode.TIP_NOT_OFFERED,
            )
        return quantize(share * percent / Decimal(100), currency)
    if amount is None:
        return Decimal(0)
    if amount < 0 or amount != quantize(amount, currency):
        raise InvalidInput(
            "a tip is a non-negative amount in the currency's minor units",
            code=PaymentsCode.INVALID_TIP,
        )
    if amount > share * max_percent / Decimal(100):
        raise InvalidInput(
            f"a tip is at most {max_percent}% of the share", code=PaymentsCode.INVALID_TIP
        )
    return amount


def share_cashback(
    share: Decimal,
    accrued_on_order: Decimal,
    restaurant: Restaurant | None,
    rules: CashbackRules,
) -> Decimal:
    """Cashback on one share, within what the order's cap has left after earlier shares."""
    earned = cashback_amount(share, restaurant, rules)
    if restaurant is None:
        return earned
    cap = restaurant.cashback_cap if restaurant.cashback_cap is not None else rules.default_cap
    if cap is None:
        return earned
    left_under_cap = round_down(cap - accrued_on_order, rules.rounding_places)
    return max(Decimal(0), min(earned, left_under_cap))


def allocate_cashback(
    paid_in_order: Sequence[tuple[str, Decimal]],
    restaurant: Restaurant | None,
    rules: CashbackRules,
) -> dict[str, Decimal]:
    """Each paid share's cashback, the shares in the order they were paid.

    Deterministic: a retried accrual computes the same amount, and a share paid later never
    changes what an earlier one earned.
    """
    accrued = Decimal(0)
    amounts: dict[str, Decimal] = {}
    for share_id, amount in paid_in_order:
        amounts[share_id] = share_cashback(amount, accrued, restaurant, rules)
        accrued += amounts[share_id]
    return amounts
