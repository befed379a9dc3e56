"""The ids a payment's steps derive from the guest's request: the payment id of a token, the
request digest eda compares on a repeat, and the key of its cashback accrual."""

from __future__ import annotations

from typing import Any

from qrpay.payments_eda.schemas import PayRequest, SharePayRequest, payment_id_for
from qrpay.payments_eda.service import accrual_key, request_hash


def pay(**overrides: Any) -> PayRequest:
    body: dict[str, Any] = {
        "service": "restaurant",
        "order_id": "ord1",
        "hmac": "a" * 64,
        "payment_method": {"type": "card", "id": "card-ok"},
        "amount": "1000",
    }
    return PayRequest.model_validate({**body, **overrides})


def share(**overrides: Any) -> SharePayRequest:
    body = pay().model_dump(mode="json")
    body.update({"share": {"way": "equal", "parts": 3}, "amount": "333.33", **overrides})
    return SharePayRequest.model_validate(body)


def test_a_token_names_one_payment_per_order() -> None:
    assert payment_id_for("ord1", "tap-0001") == payment_id_for("ord1", "tap-0001")
    assert payment_id_for("ord1", "tap-0001") != payment_id_for("ord2", "tap-0001")
    assert payment_id_for("ord1", "tap-0001") != payment_id_for("ord1", "tap-0002")
    # No splice of order and token makes another pair's id.
    assert payment_id_for("ord1", "1tap-000") != payment_id_for("ord", "11tap-000")
    assert len(payment_id_for("ord1", "tap-0001")) == 32


def test_the_request_digest_is_what_the_guest_asked_for() -> None:
    first = request_hash("user-1", "whole", pay())
    assert request_hash("user-1", "whole", pay()) == first
    assert request_hash("user-1", "whole", pay(hmac="b" * 64)) == first  # same order's link
    assert request_hash("user-2", "whole", pay()) != first
    assert request_hash("user-1", "share", pay()) != first
    card = {"type": "card", "id": "card-2"}
    assert request_hash("user-1", "whole", pay(payment_method=card)) != first
    assert request_hash("user-1", "whole", pay(amount="999")) != first
    assert request_hash("user-1", "whole", pay(bill_version=1)) != first
    a_share = request_hash("user-1", "share", share())
    assert request_hash("user-1", "share", share(tip_percent=10)) != a_share
    assert request_hash("user-1", "share", share(share={"way": "equal", "parts": 4})) != a_share
    assert len(first) == 64


def test_the_accrual_key_keeps_the_legacy_whole_bill_key() -> None:
    assert accrual_key("ord1", "ord1") == "ord1"  # a whole-bill payment before issue 18
    assert accrual_key("ord1", "p1") == "ord1.p1"
