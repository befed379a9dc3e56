"""payments-eda's refund arithmetic: the cashback a refund takes back, and the request's key."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from qrpay.payments_eda.refunds import refund_request_hash, reversal_of
from qrpay.payments_eda.schemas import RefundRequest


def test_a_whole_refund_takes_back_all_the_cashback() -> None:
    assert reversal_of(Decimal("12.34"), Decimal("500"), Decimal("500"), "RUB") == Decimal("12.34")


def test_a_part_takes_back_its_proportion_rounded_down() -> None:
    # 10.01 x 1/3 = 3.3366...: the guest keeps the fraction of a kopeck.
    assert reversal_of(Decimal("10.01"), Decimal("100"), Decimal("300"), "RUB") == Decimal("3.33")


def test_nothing_accrued_or_nothing_refunded_takes_nothing() -> None:
    assert reversal_of(Decimal(0), Decimal("100"), Decimal("300"), "RUB") == 0
    assert reversal_of(Decimal("5"), Decimal(0), Decimal("300"), "RUB") == 0


@given(
    accrued=st.decimals(min_value="0.01", max_value="10000", places=2),
    paid=st.decimals(min_value="1", max_value="100000", places=2),
    cuts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=6),
)
def test_parts_of_a_payment_never_take_back_more_than_it_accrued(
    accrued: Decimal, paid: Decimal, cuts: list[int]
) -> None:
    # Split the payment into refund parts in the given proportions (the last takes the rest).
    total_weight = sum(cuts)
    parts = [round_part(paid * w / total_weight) for w in cuts[:-1]]
    parts.append(paid - sum(parts))
    parts = [p for p in parts if p > 0]
    taken = sum(reversal_of(accrued, p, paid, "RUB") for p in parts)
    assert Decimal(0) <= taken <= accrued


def round_part(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding="ROUND_DOWN")


def test_the_request_key_ignores_the_source_and_sees_every_amount() -> None:
    base = RefundRequest(order_id="o1", refund_id="r1", amount="100", tip="0")
    same = RefundRequest(order_id="o1", refund_id="r1", amount="100", tip="0", source="support")
    assert refund_request_hash(base) == refund_request_hash(same)
    for other in (
        RefundRequest(order_id="o1", refund_id="r1", amount="101", tip="0"),
        RefundRequest(order_id="o1", refund_id="r1", amount="100", tip="1"),
        RefundRequest(order_id="o1", refund_id="r1", amount="100", tip="0", payment_id="p"),
    ):
        assert refund_request_hash(other) != refund_request_hash(base)


def test_one_amount_written_two_ways_is_one_request() -> None:
    short = RefundRequest(order_id="o1", refund_id="r1", amount="100", tip="0")
    long = RefundRequest(order_id="o1", refund_id="r1", amount="100.00", tip="0.0")
    assert refund_request_hash(short) == refund_request_hash(long)
