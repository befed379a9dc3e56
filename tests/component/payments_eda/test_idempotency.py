"""A pay request is idempotent on the guest's X-Idempotency-Token (issue 18).

eda is ``FakeEda``: it keeps the payments as eda does (a start with a payment id it knows
answers that payment, ``replayed``; with another request behind it, 409), so these tests
check what payments-eda sends it and does with its answers: the payment id the token
makes, the request digest, and the hold it (re-)sends to transactions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qrpay.payments_eda.schemas import payment_id_for
from tests.support.component.payments_eda import (
    BASE,
    ORDER_ID,
    TOKEN,
    USER,
    Env,
    pay_body,
    payment_body,
    share_body,
)
from tests.support.mockserver import drop_connection, json_response

UID = {"X-Yandex-UID": USER}
TAP = {**UID, "X-Idempotency-Token": TOKEN}
PAYMENT_ID = payment_id_for(ORDER_ID, TOKEN)


def hold_ids(route: Any) -> list[str]:
    return [call["json"]["operation_id"] for call in route.calls]


async def test_a_share_without_a_token_is_400_and_touches_nothing(pe: Env) -> None:
    answer = await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=UID)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "idempotency_token_required"
    assert pe.jobs() == []  # and no downstream call: none is mocked


@pytest.mark.parametrize("token", ["short", "bad token!", "x" * 129])
async def test_a_malformed_token_is_400(pe: Env, token: str) -> None:
    headers = {**UID, "X-Idempotency-Token": token}
    for path, body in (("orders/share", share_body()), ("orders", pay_body())):
        answer = await pe.client.post(f"{BASE}/{path}", json=body, headers=headers)
        assert answer.status_code == 400, answer.text


async def test_the_same_share_twice_is_one_payment_and_one_hold(pe: Env) -> None:
    """A double tap, or a retry after a timeout: one payment in eda, the same share id both
    times, and the hold sent under that one id (transactions keys holds by it)."""
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    answers = [
        await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP)
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert [a.json()["share_id"] for a in answers] == [PAYMENT_ID, PAYMENT_ID]
    assert {a.json()["status"] for a in answers} == {"WAITING"}
    assert list(eda.payments) == [PAYMENT_ID]
    assert eda.payments[PAYMENT_ID]["amount"] == "400.00"
    starts = [call["json"] for call in eda.start.calls]
    assert [s["payment_id"] for s in starts] == [PAYMENT_ID, PAYMENT_ID]
    assert starts[0]["token"] == TOKEN
    assert starts[0]["request_hash"] == starts[1]["request_hash"] is not None
    # Still holding at the repeat: the first hold may never have arrived, so it goes again
    # under the same id; transactions answers it as the one hold.
    assert set(hold_ids(hold)) == {PAYMENT_ID}
    assert pe.mock.requests_by_path[f"/v1/invoices/{PAYMENT_ID}/operations"] == 2


async def test_concurrent_taps_with_one_token_are_one_payment(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    answers = await asyncio.gather(
        *(pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP) for _ in range(3))
    )
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["share_id"] for a in answers} == {PAYMENT_ID}
    assert list(eda.payments) == [PAYMENT_ID]
    assert set(hold_ids(hold)) == {PAYMENT_ID}


@pytest.mark.parametrize(
    "other",
    [
        share_body("500"),  # another amount
        share_body(tip_percent=10),  # a tip now
        share_body(payment_method={"type": "card", "id": "card-2"}),  # another card
    ],
)
async def test_the_same_token_with_another_body_is_409(pe: Env, other: dict[str, Any]) -> None:
    eda = pe.eda()
    pe.card()
    pe.mock.json_handler(
        "/v1/payment-methods/card-2",
        {
            "id": "card-2",
            "type": "card",
            "system": "visa",
            "mask": "•••• 1111",
            "expiry": "12/30",
            "available": True,
            "user_id": USER,
            "token": "sandbox-ok-card-2",
        },
        method="GET",
    )
    hold = pe.operations()
    first = await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP)
    assert first.status_code == 200, first.text
    answer = await pe.client.post(
        f"{BASE}/orders/share", json=other, headers={**TAP, "X-Request-Language": "en"}
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "idempotency_token_reused"
    assert "other details" in answer.json()["message"]
    assert list(eda.payments) == [PAYMENT_ID]
    assert eda.payments[PAYMENT_ID]["amount"] == "400.00"
    assert hold.times_called == 1


async def test_the_same_token_from_another_guest_is_409(pe: Env) -> None:
    """The digest names the guest: a token seen by another cannot follow their payment."""
    eda = pe.eda()
    pe.card()
    pe.mock.json_handler(
        "/v1/payment-methods/card-ok",
        {
            "id": "card-ok",
            "type": "card",
            "system": "visa",
            "mask": "•••• 4242",
            "expiry": "12/30",
            "available": True,
            "user_id": "user-2",
            "token": "sandbox-ok-card-ok",
        },
        method="GET",
    )
    pe.operations()
    eda.add(payment_body(PAYMENT_ID, amount="400.00"), request_hash="the first guest's")
    answer = await pe.client.post(
        f"{BASE}/orders/share",
        json=share_body(),
        headers={"X-Yandex-UID": "user-2", "X-Idempotency-Token": TOKEN},
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "idempotency_token_reused"


async def test_the_whole_bill_with_a_token_twice_is_one_payment(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    answers = [
        await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP) for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["payment_id"] for a in answers] == [PAYMENT_ID, PAYMENT_ID]
    assert list(eda.payments) == [PAYMENT_ID]
    assert set(hold_ids(hold)) == {PAYMENT_ID}
    started = eda.start.calls[0]["json"]
    assert started["choice"]["way"] == "rest"
    assert started["token"] == TOKEN


async def test_the_whole_bill_and_a_share_under_one_token_are_not_one_request(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    pe.operations()
    first = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert first.status_code == 200
    answer = await pe.client.post(f"{BASE}/orders/share", json=share_body("1000"), headers=TAP)
    assert answer.status_code == 409
    assert answer.json()["code"] == "idempotency_token_reused"
    assert list(eda.payments) == [PAYMENT_ID]


@pytest.mark.parametrize("code", ["payment_in_progress", "nothing_left"])
async def test_a_whole_bill_pay_without_a_token_follows_the_payment_under_way(
    pe: Env, code: str
) -> None:
    """Seed-era behaviour: one payment of the bill in progress; a client without a token
    asking again is answered WAITING (it follows that payment), never a second hold."""
    eda = pe.eda(payment_body("under-way"))
    eda.refuse = (409, code)
    pe.card()
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=UID)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "WAITING"
    assert answer.json()["payment_id"] is None
    assert list(eda.payments) == ["under-way"]  # and no hold: transactions is not mocked


async def test_a_whole_bill_pay_with_a_new_token_while_another_is_under_way_is_409(
    pe: Env,
) -> None:
    """A token names one payment: it cannot follow someone else's."""
    eda = pe.eda(payment_body("under-way"))
    eda.refuse = (409, "payment_in_progress")
    pe.card()
    answer = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert answer.status_code == 409
    assert answer.json()["code"] == "payment_in_progress"
    assert list(eda.payments) == ["under-way"]


async def test_a_repeat_after_a_lost_hold_answer_sends_the_same_hold(pe: Env) -> None:
    """transactions' answer to the hold was lost (DependencyUnavailable): the first request
    answers WAITING, the payment stays under way, and the guest's retry sends the hold
    again under the same id, never a second one."""
    eda = pe.eda()
    pe.card()
    sent: list[str] = []
    answered: list[str] = []
    lost = [True]  # every try of the first request loses its answer

    async def hold(request: Any) -> Any:
        sent.append((await request.json())["operation_id"])
        if lost[0]:
            return await drop_connection(request)
        answered.append(sent[-1])
        return json_response(
            {
                "operation_id": sent[-1],
                "kind": "hold",
                "status": "pending",
                "amount": "1000.00",
                "currency": "RUB",
                "target": None,
                "payment_method_id": "card-ok",
                "reason": None,
                "created_at": "2026-01-01T12:00:00Z",
                "finished_at": None,
            }
        )

    pe.mock.handler("/v1/invoices/{invoice}/operations")(hold)
    first = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "WAITING"
    assert eda.state(PAYMENT_ID) == "holding"
    assert eda.moves["begin-rollback"].times_called == 0
    lost[0] = False
    again = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "payment_id": PAYMENT_ID}
    assert set(sent) == {PAYMENT_ID}
    assert answered == [PAYMENT_ID]
    assert list(eda.payments) == [PAYMENT_ID]


@pytest.mark.parametrize(
    ("state", "status"),
    [("paid", "PAYED"), ("released", "DECLINED"), ("rolling_back", "WAITING")],
)
async def test_a_replay_of_a_payment_that_moved_on_answers_its_status_without_a_hold(
    pe: Env, state: str, status: str
) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    first = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert first.status_code == 200
    eda.payments[PAYMENT_ID]["state"] = state  # the clear's callback, or a rollback
    again = await pe.client.post(f"{BASE}/orders", json=pay_body(), headers=TAP)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == status
    assert again.json()["payment_id"] == PAYMENT_ID
    assert hold.times_called == 1
    assert list(eda.payments) == [PAYMENT_ID]


async def test_a_replay_of_a_paid_share_answers_payed(pe: Env) -> None:
    eda = pe.eda()
    pe.card()
    hold = pe.operations()
    first = await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP)
    assert first.status_code == 200
    eda.payments[PAYMENT_ID]["state"] = "paid"
    again = await pe.client.post(f"{BASE}/orders/share", json=share_body(), headers=TAP)
    assert again.json() == {**again.json(), "share_id": PAYMENT_ID, "status": "PAYED"}
    assert hold.times_called == 1
