"""Refunds of paid payments over HTTP (SQLite, frozen clock): admission of one payment's
refund and of one spread over the paid payments, replay by refund id, the outcomes of a
part, the ledger's refunded amounts, and the order's change feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from tests.support.component.eda import changes, create, move, start, statuses
from tests.support.component.split import begin, open_table
from tests.support.tickets import GuardedCall


async def refund(
    client: httpx.AsyncClient, order_id: str, refund_id: str, amount: str, **fields: Any
) -> httpx.Response:
    body = {"refund_id": refund_id, "amount": amount, **fields}
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body)


async def outcome(
    client: httpx.AsyncClient, order_id: str, part_id: str, step: str
) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/refunds/{part_id}/{step}")


async def ledger(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/orders/{order_id}/payments")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def parts_of(body: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    return [(p["part_id"], p["payment_id"], p["amount"], p["tip"], p["state"]) for p in body]


def payment_refunds(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {p["payment_id"]: (p["refunded"], p["refunded_tip"]) for p in body["payments"]}


async def pay(
    client: httpx.AsyncClient, order_id: str, payment_id: str, price: str, tip: str, **choice: Any
) -> None:
    started = await begin(client, order_id, payment_id, price, tip=tip, **choice)
    assert started.status_code == 200, started.text
    done = await move(client, order_id, payment_id, "complete")
    assert done.status_code == 200, done.text


@pytest.fixture
async def paid_order(client: httpx.AsyncClient) -> str:
    """A bill of 100 paid by one guest with a tip of 10."""
    order_id = str((await create(client))["order"]["order_id"])
    assert (await start(client, order_id, "pay-1", "100", tip="10")).status_code == 200
    assert (await move(client, order_id, "pay-1", "complete")).status_code == 200
    return order_id


async def test_a_refund_of_one_payment_and_its_outcome(
    client: httpx.AsyncClient, paid_order: str, frozen_clock: FrozenClock
) -> None:
    admitted = await refund(client, paid_order, "r1", "30", tip="10", payment_id="pay-1")
    assert admitted.status_code == 200, admitted.text
    body = admitted.json()
    assert (body["order_id"], body["refund_id"], body["replayed"]) == (paid_order, "r1", False)
    assert body["parts"] == [
        {
            "part_id": "r1.1",
            "refund_id": "r1",
            "payment_id": "pay-1",
            "invoice_id": "pay-1",
            "amount": "30.00",
            "tip": "10.00",
            "state": "refunding",
            "created_at": body["parts"][0]["created_at"],
            "updated_at": body["parts"][0]["created_at"],
        }
    ]
    # Being refunded is not refunded yet; the order is paid as before.
    assert (body["status"], body["paid"], body["tips"], body["left"]) == (
        "PAYED",
        "100.00",
        "10.00",
        "0.00",
    )
    assert (body["refunded"], body["refunded_tips"], body["refunded_fully"]) == (
        "0.00",
        "0.00",
        False,
    )
    assert body["refunds"] == body["parts"]
    assert await ledger(client, paid_order) == {
        k: v for k, v in body.items() if k not in ("refund_id", "replayed", "parts")
    }

    frozen_clock.advance(5)
    done = await outcome(client, paid_order, "r1.1", "complete")
    assert done.status_code == 200, done.text
    after = done.json()
    assert parts_of([after["part"]]) == [("r1.1", "pay-1", "30.00", "10.00", "refunded")]
    assert after["part"]["updated_at"] > after["part"]["created_at"]
    assert (after["refunded"], after["refunded_tips"], after["status"]) == (
        "30.00",
        "10.00",
        "PAYED",
    )
    assert payment_refunds(after) == {"pay-1": ("30.00", "10.00")}
    # A repeat answers the part as it stands; the other outcome is refused.
    assert (await outcome(client, paid_order, "r1.1", "complete")).json() == after
    late = await outcome(client, paid_order, "r1.1", "fail")
    assert (late.status_code, late.json()["code"]) == (409, "refund_move_refused")
    read = await ledger(client, paid_order)
    assert read == {k: v for k, v in after.items() if k != "part"}


async def test_the_same_refund_id_answers_its_parts_and_another_request_is_refused(
    client: httpx.AsyncClient, paid_order: str
) -> None:
    first = await refund(client, paid_order, "r1", "40", request_hash="h1")
    assert first.status_code == 200, first.text
    again = await refund(client, paid_order, "r1", "40.00", request_hash="h1")
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert {**again.json(), "replayed": False} == first.json()
    for other in (
        {"amount": "41"},
        {"tip": "1"},
        {"payment_id": "pay-1"},
        {"request_hash": "h2"},
    ):
        body = {"amount": "40", "request_hash": "h1", **other}
        reused = await refund(client, paid_order, "r1", **body)
        assert (reused.status_code, reused.json()["code"]) == (409, "refund_id_reused"), other
    assert len((await ledger(client, paid_order))["refunds"]) == 1


async def test_a_refund_without_a_payment_is_spread_newest_paid_first(
    client: httpx.AsyncClient,
) -> None:
    order_id = await open_table(client, "60", "40")
    await pay(client, order_id, "g1", "60.00", "6", way="items", items=[0])
    await pay(client, order_id, "g2", "40.00", "4", way="items", items=[1])
    answer = await refund(client, order_id, "r1", "50", tip="5")
    assert answer.status_code == 200, answer.text
    parts = answer.json()["parts"]
    assert parts_of(parts) == [
        ("r1.1", "g2", "40.00", "4.00", "refunding"),
        ("r1.2", "g1", "10.00", "1.00", "refunding"),
    ]
    assert [p["invoice_id"] for p in parts] == ["g2", "g1"]
    # Only 50 and a tip of 5 are left to refund.
    short = await refund(client, order_id, "r2", "50.01")
    assert (short.status_code, short.json()["code"]) == (409, "refund_exceeds_paid")
    # A failed part gives its money back to be refunded again.
    failed = await outcome(client, order_id, "r1.1", "fail")
    assert failed.json()["part"]["state"] == "failed"
    again = await refund(client, order_id, "r2", "90", tip="9")
    assert again.status_code == 200, again.text
    assert parts_of(again.json()["parts"]) == [
        ("r2.1", "g2", "40.00", "4.00", "refunding"),
        ("r2.2", "g1", "50.00", "5.00", "refunding"),
    ]
    for part in ("r1.2", "r2.1", "r2.2"):
        done = await outcome(client, order_id, part, "complete")
        assert done.status_code == 200, done.text
    final = done.json()
    assert (final["refunded"], final["refunded_tips"], final["refunded_fully"]) == (
        "100.00",
        "10.00",
        True,
    )
    assert final["status"] == "PAYED"
    assert payment_refunds(final) == {"g1": ("60.00", "6.00"), "g2": ("40.00", "4.00")}


async def test_only_paid_payments_are_refunded(client: httpx.AsyncClient) -> None:
    order_id = await open_table(client, "60", "40")
    nothing = await refund(client, order_id, "r0", "1")
    assert (nothing.status_code, nothing.json()["code"]) == (409, "payment_not_refundable")
    held = await begin(client, order_id, "g1", "60.00", way="items", items=[0])
    assert held.status_code == 200, held.text
    answer = await refund(client, order_id, "r1", "1", payment_id="g1")
    assert (answer.status_code, answer.json()["code"]) == (409, "payment_not_refundable")
    assert (await move(client, order_id, "g1", "fail")).status_code == 200
    answer = await refund(client, order_id, "r1", "1", payment_id="g1")
    assert (answer.status_code, answer.json()["code"]) == (409, "payment_not_refundable")
    unknown = await refund(client, order_id, "r1", "1", payment_id="nope")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "payment_not_found")
    # A part-paid order's paid share can be refunded; the bill does not reopen.
    await pay(client, order_id, "g2", "40.00", "0", way="items", items=[1])
    answer = await refund(client, order_id, "r1", "40", payment_id="g2")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["left"]) == ("WAITING", "60.00")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": "0", "tip": "0"}, "invalid_refund_amount"),
        ({"amount": "-1"}, "invalid_amount"),
        ({"amount": "1.001"}, "invalid_amount"),
        ({"tip": "-0.01"}, "invalid_amount"),
        ({"amount": 1}, "invalid_request"),
        ({"currency": "USD"}, "invalid_refund_amount"),
        ({"currency": "ZZZ"}, "invalid_refund_amount"),
        ({"refund_id": "a/b"}, "invalid_request"),
        ({"refund_id": ""}, "invalid_request"),
        ({"refund_id": "r" * 101}, "invalid_request"),
        ({"x": 1}, "unknown_field"),
    ],
)
async def test_refund_validation(
    client: httpx.AsyncClient, paid_order: str, change: dict[str, Any], code: str
) -> None:
    body = {"refund_id": "r1", "amount": "10", "tip": "0"} | change
    answer = await client.post(f"/v1/orders/{paid_order}/refunds", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert (await ledger(client, paid_order))["refunds"] == []


async def test_unknown_order_and_part(client: httpx.AsyncClient, paid_order: str) -> None:
    answer = await refund(client, "nope", "r1", "1")
    assert (answer.status_code, answer.json()["code"]) == (404, "order_not_found")
    for step in ("complete", "fail"):
        answer = await outcome(client, "nope", "r1.1", step)
        assert (answer.status_code, answer.json()["code"]) == (404, "order_not_found")
        answer = await outcome(client, paid_order, "r1.1", step)
        assert (answer.status_code, answer.json()["code"]) == (404, "refund_not_found")


async def test_refund_changes_are_in_the_orders_feed_and_its_status_stays(
    client: httpx.AsyncClient, paid_order: str
) -> None:
    before = await changes(client)
    assert statuses(before) == [(paid_order, "PAYED")]
    assert before["changes"][0]["refunded_fully"] is False
    version = before["changes"][0]["version"]

    assert (await refund(client, paid_order, "r1", "100", tip="10")).status_code == 200
    admitted = await changes(client, before["cursor"])
    assert statuses(admitted) == [(paid_order, "PAYED")]
    assert admitted["changes"][0]["version"] == version + 1
    assert admitted["changes"][0]["refunded_fully"] is False
    # A replay writes nothing.
    assert (await refund(client, paid_order, "r1", "100", tip="10")).json()["replayed"]
    assert (await changes(client, admitted["cursor"]))["changes"] == []

    done = (await outcome(client, paid_order, "r1.1", "complete")).json()
    assert done["refunded_fully"] is True
    completed = await changes(client, admitted["cursor"])
    assert statuses(completed) == [(paid_order, "PAYED")]
    assert completed["changes"][0]["version"] == version + 2
    # Beside the status, for a refund-aware reader: all paid money is refunded.
    assert completed["changes"][0]["refunded_fully"] is True
    # A repeat of the outcome writes nothing.
    await outcome(client, paid_order, "r1.1", "complete")
    assert (await changes(client, completed["cursor"]))["changes"] == []
    # Every reader still sees PAYED.
    order = (await client.get(f"/v1/orders/{paid_order}")).json()
    assert order["status"] == "PAYED"
    polled = await client.post("/v1/orders/statuses", json={"order_ids": [paid_order]})
    assert polled.json()["orders"][0] == {
        "order_id": paid_order,
        "client_id": "rest-1",
        "status": "PAYED",
        "version": version + 2,
        "refunded_fully": True,
    }


async def test_refunds_are_made_and_moved_by_payments_eda_only(
    client: httpx.AsyncClient, paid_order: str
) -> None:
    call = GuardedCall(
        "eda",
        client,
        "POST",
        f"/v1/orders/{paid_order}/refunds",
        "/v1/orders/{order_id}/refunds",
        json={"refund_id": "r1", "amount": "10"},
    )
    await call.assert_refused("payments-eda", wrong="iiko-integration")
    allowed = await call.as_caller("payments-eda")
    assert allowed.status_code == 200, allowed.text
    for step in ("complete", "fail"):
        move_part = GuardedCall(
            "eda",
            client,
            "POST",
            f"/v1/orders/{paid_order}/refunds/r1.1/{step}",
            f"/v1/orders/{{order_id}}/refunds/{{part_id}}/{step}",
        )
        await move_part.assert_refused("payments-eda", wrong="iiko-integration")
    # Nothing refused moved the part.
    assert [p["state"] for p in (await ledger(client, paid_order))["refunds"]] == ["refunding"]
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/orders/{order_id}/refunds",
        "/v1/orders/{order_id}/refunds/{part_id}/complete",
        "/v1/orders/{order_id}/refunds/{part_id}/fail",
    ):
        assert path in paths


async def test_refund_problems_are_the_refused_and_the_stuck_newest_first(
    client: httpx.AsyncClient, paid_order: str, frozen_clock: FrozenClock
) -> None:
    for refund_id in ("r-fails", "r-stuck", "r-done"):
        admitted = await refund(client, paid_order, refund_id, "10", payment_id="pay-1")
        assert admitted.status_code == 200, admitted.text
    assert (await outcome(client, paid_order, "r-done.1", "complete")).status_code == 200
    frozen_clock.advance(60)
    assert (await outcome(client, paid_order, "r-fails.1", "fail")).status_code == 200
    since = frozen_clock.now()

    def listed(answer: httpx.Response) -> list[tuple[str, str]]:
        assert answer.status_code == 200, answer.text
        return [(r["part_id"], r["state"]) for r in answer.json()["refunds"]]

    path = "/v1/orders/refunds/problems"
    # Refunding since before the cutoff: stuck; refused for good whenever: a problem.
    stuck = await client.get(path, params={"refunding_before": since.isoformat()})
    assert listed(stuck) == [("r-fails.1", "failed"), ("r-stuck.1", "refunding")]
    early = (since - timedelta(seconds=120)).isoformat()
    assert listed(await client.get(path, params={"refunding_before": early})) == [
        ("r-fails.1", "failed")
    ]
    one = await client.get(path, params={"refunding_before": since.isoformat(), "limit": 1})
    assert listed(one) == [("r-fails.1", "failed")]
