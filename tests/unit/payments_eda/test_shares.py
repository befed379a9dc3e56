"""Tips on a share and the order-wide cashback cap shared between shares."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qrpay.kernel.errors import InvalidInput
from qrpay.payments_eda.domain import cashback_amount
from qrpay.payments_eda.schemas import PaymentsCode
from qrpay.payments_eda.shares import share_cashback, tip_amount
from qrpay.restaurants import CashbackRules
from tests.support.orders import restaurant

D = Decimal
OFFERED = (D(5), D(10), D(15))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "0"),
        ({"percent": D(10)}, "33.33"),
        ({"percent": D(15)}, "50.00"),  # 49.9995 rounds half up
        ({"amount": D("20")}, "20"),
        ({"amount": D("0")}, "0"),
    ],
)
def test_tip(kwargs: dict[str, Decimal], expected: str) -> None:
    assert tip_amount(D("333.33"), "RUB", offered_percents=OFFERED, **kwargs) == D(expected)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"percent": D(12)}, PaymentsCode.TIP_NOT_OFFERED),
        ({"percent": D(10), "amount": D(1)}, PaymentsCode.INVALID_TIP),
        ({"amount": D("-1")}, PaymentsCode.INVALID_TIP),
        ({"amount": D("0.001")}, PaymentsCode.INVALID_TIP),
        ({"amount": D("100.01")}, PaymentsCode.INVALID_TIP),  # more than the share itself
    ],
)
def test_tip_refused(kwargs: dict[str, Decimal], code: PaymentsCode) -> None:
    with pytest.raises(InvalidInput) as caught:
        tip_amount(D("100"), "RUB", offered_percents=OFFERED, **kwargs)
    assert caught.value.code == code


def test_without_a_cap_each_share_earns_its_own_rate() -> None:
    assert share_cashback(D("333.33"), D(0), restaurant("10"), CashbackRules()) == D(33)


def test_the_cap_is_for_the_order_and_shared_first_come_first_served() -> None:
    rules, cafe = CashbackRules(), restaurant("10", cap="50")
    first = share_cashback(D("400"), D(0), cafe, rules)
    second = share_cashback(D("400"), first, cafe, rules)
    third = share_cashback(D("400"), first + second, cafe, rules)
    assert (first, second, third) == (D(40), D(10), D(0))


def test_shares_never_earn_more_than_the_whole_bill() -> None:
    rules, cafe = CashbackRules(), restaurant(rate="7", cap="100")
    shares = [D("333.33"), D("333.33"), D("333.34"), D("1000")]
    accrued = D(0)
    for amount in shares:
        accrued += share_cashback(amount, accrued, cafe, rules)
    assert accrued <= cashback_amount(sum(shares, D(0)), cafe, rules)


def test_an_unknown_restaurant_earns_nothing() -> None:
    assert share_cashback(D("100"), D(0), None, CashbackRules()) == 0
