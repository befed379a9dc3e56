"""Issue 19's races on real PostgreSQL across two eda instances: concurrent refunds of one
payment whose sum exceeds what it paid, and one refund id sent twice at once. The order's
row lock serializes their admission: what is admitted never exceeds the payment, and one
refund id is one set of parts, whichever instance wrote it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.component.eda import changes, ledger, move, start
from tests.support.component.split import open_table

pytestmark = pytest.mark.postgres

ROUNDS = 10


async def refund(
    client: httpx.AsyncClient, order_id: str, refund_id: str, amount: str, **fields: Any
) -> httpx.Response:
    body = {"refund_id": refund_id, "amount": amount, **fields}
    return await client.post(f"/v1/orders/{order_id}/refunds", json=body)


async def paid_order(client: httpx.AsyncClient, internal: str) -> str:
    """A bill of 100 paid whole with a tip of 10, by the payment ``pay-<internal>``."""
    order_id = await open_table(client, "100", internal=internal)
    payment_id = f"pay-{internal}"
    assert (await start(client, order_id, payment_id, "100.00", tip="10")).status_code == 200
    assert (await move(client, order_id, payment_id, "complete")).status_code == 200
    return order_id


async def paid_orders(client: httpx.AsyncClient, name: str) -> AsyncIterator[tuple[int, str]]:
    """ROUNDS rounds, each with its number and a fresh ``paid_order`` (``<name>-<n>``)."""
    for n in range(ROUNDS):
        yield n, await paid_order(client, f"{name}-{n}")


def reserved(body: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """What the refunds not failed take of the order's money: amount and tip."""
    live = [p for p in body["refunds"] if p["state"] != "failed"]
    return (
        sum((Decimal(p["amount"]) for p in live), Decimal(0)),
        sum((Decimal(p["tip"]) for p in live), Decimal(0)),
    )


async def test_concurrent_refunds_never_exceed_the_payment(
    instances: list[httpx.AsyncClient],
) -> None:
    async for n, order_id in paid_orders(instances[0], "exceed"):
        # Six refunds of 30 and a tip of 3 at once (180 of 100, 18 of 10), through both
        # instances, half of them naming the payment: three fit, the rest are refused.
        answers = await asyncio.gather(
            *(
                refund(
                    instances[i % 2],
                    order_id,
                    f"r{n}-{i}",
                    "30",
                    tip="3",
                    **({"payment_id": f"pay-exceed-{n}"} if i % 2 else {}),
                )
                for i in range(6)
            )
        )
        assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
        admitted = [a for a in answers if a.status_code == 200]
        assert len(admitted) == 3, [a.text for a in answers]
        refused = {a.json()["code"] for a in answers if a.status_code == 409}
        assert refused == {"refund_exceeds_paid"}
        after = await ledger(instances[n % 2], order_id)
        assert reserved(after) == (Decimal(90), Decimal(9))
        assert len(after["refunds"]) == 3
        # Each admission saw the ones before it: its answer holds every earlier part.
        assert sorted(len(a.json()["refunds"]) for a in admitted) == [1, 2, 3]


async def test_concurrent_refunds_of_the_rest_admit_only_what_is_left(
    instances: list[httpx.AsyncClient],
) -> None:
    async for n, order_id in paid_orders(instances[0], "rest"):
        first = await refund(instances[0], order_id, f"a{n}", "60", payment_id=f"pay-rest-{n}")
        assert first.status_code == 200, first.text
        # 40 is left: two refunds of 40 at once, one wins; then the first part fails and
        # its 60 is free again.
        both = await asyncio.gather(
            *(refund(instances[i], order_id, f"b{n}-{i}", "40") for i in range(2))
        )
        assert sorted(a.status_code for a in both) == [200, 409], [a.text for a in both]
        after = await ledger(instances[1], order_id)
        assert reserved(after) == (Decimal(100), Decimal(0))
        failed = await instances[1].post(f"/v1/orders/{order_id}/refunds/a{n}.1/fail")
        assert failed.status_code == 200, failed.text
        assert reserved(failed.json()) == (Decimal(40), Decimal(0))


async def test_the_same_refund_id_twice_at_once_is_one_set_of_parts(
    instances: list[httpx.AsyncClient],
) -> None:
    async for n, order_id in paid_orders(instances[0], "same"):
        answers = await asyncio.gather(
            *(
                refund(instances[i % 2], order_id, f"r{n}", "50", tip="5", request_hash="h")
                for i in range(2)
            )
        )
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert sorted(a.json()["replayed"] for a in answers) == [False, True]
        assert answers[0].json()["parts"] == answers[1].json()["parts"]
        after = await ledger(instances[n % 2], order_id)
        assert [(p["part_id"], p["amount"], p["tip"]) for p in after["refunds"]] == [
            (f"r{n}.1", "50.00", "5.00")
        ]


async def test_the_same_refund_id_with_another_request_at_once_is_refused(
    instances: list[httpx.AsyncClient],
) -> None:
    async for n, order_id in paid_orders(instances[0], "reuse"):
        answers = await asyncio.gather(
            refund(instances[0], order_id, f"r{n}", "50"),
            refund(instances[1], order_id, f"r{n}", "20"),
        )
        won = [a for a in answers if a.status_code == 200]
        lost = [a for a in answers if a.status_code != 200]
        assert len(won) == 1, [a.text for a in answers]
        assert [(a.status_code, a.json()["code"]) for a in lost] == [(409, "refund_id_reused")]
        after = await ledger(instances[1], order_id)
        assert after["refunds"] == won[0].json()["parts"]


async def test_outcomes_of_one_part_at_once_agree(instances: list[httpx.AsyncClient]) -> None:
    async for n, order_id in paid_orders(instances[0], "outcome"):
        assert (await refund(instances[0], order_id, f"r{n}", "100", tip="10")).status_code == 200
        path = f"/v1/orders/{order_id}/refunds/r{n}.1"
        done, failed = await asyncio.gather(
            instances[0].post(f"{path}/complete"), instances[1].post(f"{path}/fail")
        )
        codes = sorted(a.status_code for a in (done, failed))
        assert codes == [200, 409], (done.text, failed.text)
        after = await ledger(instances[n % 2], order_id)
        state = after["refunds"][0]["state"]
        assert after["refunded_fully"] is (state == "refunded")
        assert (done.status_code == 200) is (state == "refunded")
        # The statuses poll and the feed (asyncpg's statements) carry it beside PAYED.
        polled = await instances[1].post("/v1/orders/statuses", json={"order_ids": [order_id]})
        fed = await changes(instances[0], client_id="rest-1")
        for view in (polled.json()["orders"][0], fed["changes"][-1]):
            assert (view["order_id"], view["status"]) == (order_id, "PAYED")
            assert view["refunded_fully"] is after["refunded_fully"]
