"""Reversals and debt on real PostgreSQL, across two instances on one database: the sum of
an accrual's reversals, the balance they take from and the debt an accrual repays are
decided one writer at a time (the user's account row lock), whichever instance serves."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from tests.support.component.cashback import accrue, reverse, spend
from tests.support.postgres import row_count

pytestmark = pytest.mark.postgres

ROUNDS = 5


async def balance(client: httpx.AsyncClient, user_id: str) -> tuple[str, str]:
    answer = (await client.get(f"/v1/users/{user_id}/balance")).json()
    (rub,) = answer["balances"]
    return rub["amount"], rub["debt"]


async def test_racing_reversals_never_sum_above_the_accrual(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    for r in range(ROUNDS):
        user, key = f"u{r}", f"order-{r}.inv"
        assert (await accrue(instances[0], key, user_id=user, amount="10")).status_code == 200
        # Twenty parts of 1.50 at once on both instances: 6 fit into 10.00, 14 do not.
        responses = await asyncio.gather(
            *(reverse(instances[i % 2], key, f"ref-{r}.{i}", amount="1.50") for i in range(20))
        )
        codes = sorted("created" if r.status_code == 200 else r.json()["code"] for r in responses)
        assert codes == ["created"] * 6 + ["reversal_exceeds_accrual"] * 14, codes
        taken = [r.json()["reversal"] for r in responses if r.status_code == 200]
        assert all((t["taken"], t["debt"]) == ("1.50", "0.00") for t in taken)
        assert await balance(instances[r % 2], user) == ("1.00", "0.00")
    assert await row_count(migrated_pg_url, "reversals") == 6 * ROUNDS


async def test_the_same_reversal_at_once_on_two_instances_is_made_once(
    instances: list[httpx.AsyncClient], migrated_pg_url: str
) -> None:
    assert (await accrue(instances[0], "order-1", amount="10")).status_code == 200
    responses = await asyncio.gather(
        *(
            reverse(instances[i % 2], "order-1", "ref.1", amount="4" if i % 3 else "3")
            for i in range(30)
        )
    )
    created = [r for r in responses if r.status_code == 200 and r.json()["created"]]
    assert len(created) == 1
    winner = created[0].json()["reversal"]
    for response in responses:
        if response.status_code == 200:
            assert response.json()["reversal"] == winner
        else:
            assert (response.status_code, response.json()["code"]) == (409, "reversal_mismatch")
    assert await row_count(migrated_pg_url, "reversals") == 1


async def test_racing_accruals_repay_a_debt_once(
    running_instances: list[tuple[FastAPI, httpx.AsyncClient]], migrated_pg_url: str
) -> None:
    (app, first), (_, second) = running_instances
    for r in range(ROUNDS):
        user = f"u{r}"
        assert (await accrue(first, f"o{r}", user_id=user, amount="10")).status_code == 200
        await spend(app, first, "10.00", user_id=user)
        reversed_ = await reverse(first, f"o{r}", f"ref-{r}", amount="3")
        assert reversed_.json()["reversal"]["debt"] == "3.00"
        # Two accruals of 2.00 at once, one on each instance: 3.00 repaid in all, not 4.00.
        answers = await asyncio.gather(
            accrue(first, f"o{r}.a", user_id=user, amount="2"),
            accrue(second, f"o{r}.b", user_id=user, amount="2"),
        )
        assert [a.status_code for a in answers] == [200, 200]
        assert await balance(second, user) == ("1.00", "0.00")
        history = (await first.get(f"/v1/cashback/history/{user}")).json()
        repaid = [Decimal(e["amount"]) for e in history["entries"] if e["kind"] == "repayment"]
        assert sorted(repaid) == [Decimal(1), Decimal(2)]
    assert await row_count(migrated_pg_url, "debt_repayments") == 2 * ROUNDS
