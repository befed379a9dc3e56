"""Each rule of SPEC 4.3 has a 4xx case that changes nothing.

No downstream is mocked unless the rule needs a read: any write (eda payment start,
transactions hold, a queued task) would be an unmocked call or a job, and fail the test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.component.payments_eda import BASE, USER, Env, pay_body

UID = {"X-Yandex-UID": USER}


def without(key: str) -> dict[str, Any]:
    body = pay_body()
    del body[key]
    return body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (pay_body(extra="x"), "unknown_field"),
        (pay_body(payment_method={"type": "card", "id": "card-ok", "extra": 1}), "unknown_field"),
        (without("order_id"), "missing_field"),
        (without("amount"), "missing_field"),
        (without("payment_method"), "missing_field"),
        (without("service"), "missing_field"),
        (without("hmac"), "missing_field"),
        (pay_body(service="taxi"), "invalid_request"),
        (pay_body(payment_method={"type": "wallet", "id": "w-1"}), "invalid_request"),
        (pay_body(payment_method={"type": "card", "id": "bad id/with slash"}), "invalid_request"),
        (pay_body(order_id=""), "invalid_request"),
        (pay_body(order_id="o" * 65), "invalid_request"),
        (pay_body(amount=""), "invalid_request"),
        (pay_body(amount=100), "invalid_request"),
        (pay_body(hmac="a" * 300), "invalid_request"),
        ([], "invalid_request"),
    ],
)
async def test_invalid_pay_bodies_are_400_and_change_nothing(pe: Env, body: Any, code: str) -> None:
    answer = await pe.client.post(f"{BASE}/orders", json=body, headers=UID)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert pe.jobs() == []


async def test_a_body_that_is_not_json_is_400(pe: Env) -> None:
    answer = await pe.client.post(
        f"{BASE}/orders",
        content=b"{not json",
        headers={**UID, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_json"


async def test_an_oversized_body_is_413(pe: Env) -> None:
    answer = await pe.client.post(f"{BASE}/orders", content=b"x" * (2 * 1024 * 1024), headers=UID)
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "params",
    [
        {"order_id": "ord1", "hmac": "x"},  # no service
        {"service": "eats", "order_id": "ord1", "hmac": "x"},
        {"service": "restaurant", "hmac": "x"},  # no order_id
        {"service": "restaurant", "order_id": "o" * 65, "hmac": "x"},
    ],
)
async def test_invalid_preorder_queries_are_400(pe: Env, params: dict[str, str]) -> None:
    answer = await pe.client.get(f"{BASE}/preorder", params=params)
    assert answer.status_code == 400


async def test_status_without_order_id_is_400(pe: Env) -> None:
    answer = await pe.client.get(f"{BASE}/orders", params={"hmac": "x"})
    assert answer.status_code == 400


async def test_a_uid_header_that_is_too_long_is_400(pe: Env) -> None:
    answer = await pe.client.post(
        f"{BASE}/orders", json=pay_body(), headers={"X-Yandex-UID": "u" * 200}
    )
    assert answer.status_code == 400


async def test_another_method_on_orders_is_405_naming_both(pe: Env) -> None:
    answer = await pe.client.request("DELETE", f"{BASE}/orders")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, POST"


def share_with(**overrides: Any) -> dict[str, Any]:
    body = pay_body(amount="400", share={"way": "amount", "amount": "400"})
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # Issue 18: items only with way: items (they used to reserve lines of any share).
        (share_with(share={"way": "amount", "amount": "1", "items": [0, 1, 2]}), "invalid_request"),
        (share_with(share={"way": "equal", "parts": 3, "items": [0]}), "invalid_request"),
        (share_with(share={"way": "rest", "items": [0]}), "invalid_request"),
        (share_with(share={"way": "items", "items": [-1]}), "invalid_request"),
        (share_with(share={"way": "equal", "parts": 1}), "invalid_request"),
        (share_with(share={"way": "equal", "parts": 51}), "invalid_request"),
        (share_with(share={"way": "halves"}), "invalid_request"),
        (share_with(tip_percent=0), "invalid_request"),
        (share_with(share={"way": "amount", "amount": "1", "extra": 1}), "unknown_field"),
        (pay_body(), "missing_field"),  # no share
    ],
)
async def test_invalid_share_bodies_are_400_and_change_nothing(
    pe: Env, body: Any, code: str
) -> None:
    headers = {**UID, "X-Idempotency-Token": "tap-0001"}
    answer = await pe.client.post(f"{BASE}/orders/share", json=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert pe.jobs() == []


@pytest.mark.parametrize(
    ("tip", "code"), [({"tip": "-1"}, "invalid_tip"), ({"tip": "0.001"}, "invalid_tip")]
)
async def test_a_tip_that_is_no_amount_is_400_before_anything_starts(
    pe: Env, tip: dict[str, Any], code: str
) -> None:
    pe.order()  # read for the currency; nothing else is mocked
    headers = {**UID, "X-Idempotency-Token": "tap-0001"}
    answer = await pe.client.post(f"{BASE}/orders/share", json=share_with(**tip), headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert pe.jobs() == []
