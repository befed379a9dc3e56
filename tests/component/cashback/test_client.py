"""The typed client against the real app over HTTP: the contract both sides agree on."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI

from qrpay.cashback.client import CashbackClient
from qrpay.cashback.schemas import AccrualIn, ReversalIn, ReversalResult
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.errors import Conflict, DependencyUnavailable, NotFound
from qrpay.kernel.http_client import HttpSession
from tests.support.component.cashback import accrual
from tests.support.services import (
    dev_config,
    make_context,
    point_services_at,
    running_service,
    served,
)
from tests.support.tickets import tools_session


def make_client(
    base_url: str, tmp_path: Path, *, as_tools: bool = False
) -> tuple[CashbackClient, HttpSession]:
    """A client calling as payments-eda (accruals), or as the tools (balances, history)."""
    config = point_services_at(dev_config(), base_url, "cashback", retries=0)
    ctx = make_context("payments-eda", tmp_path / "caller", config=config)
    session = tools_session(ctx) if as_tools else ctx.http
    client = CashbackClient(
        session=session, dependency=ctx.dependency("cashback"), metrics=ctx.metrics
    )
    return client, session


@asynccontextmanager
async def clients(app: FastAPI, tmp_path: Path) -> AsyncIterator[tuple[CashbackClient, ...]]:
    """The app served, a client calling it as payments-eda and one as the tools."""
    async with served(app) as base_url:
        client, session = make_client(base_url, tmp_path)
        reader, reader_session = make_client(base_url, tmp_path, as_tools=True)
        try:
            yield client, reader
        finally:
            await session.close()
            await reader_session.close()


async def test_client_round_trips(app: FastAPI, tmp_path: Path) -> None:
    async with clients(app, tmp_path) as (client, reader):
        first = await client.accrue("o1", AccrualIn.model_validate(accrual(amount="0.1")))
        again = await client.accrue("o1", AccrualIn.model_validate(accrual(amount="0.10")))
        await client.accrue("o2", AccrualIn.model_validate(accrual(amount="0.20")))
        with pytest.raises(Conflict) as mismatch:
            await client.accrue("o1", AccrualIn.model_validate(accrual(amount="1")))
        balance = await reader.balance("u1")
        history = await reader.history("u1")

    assert first.created is True
    assert again.created is False
    assert again.accrual == first.accrual
    assert mismatch.value.code == "accrual_mismatch"
    assert [(b.currency, Decimal(b.amount)) for b in balance.balances] == [("RUB", Decimal("0.3"))]
    assert balance.balances[0].amount == "0.30"
    assert {a.order_id for a in history.accruals} == {"o1", "o2"}
    assert [e.kind for e in history.entries] == ["accrual", "accrual"]


async def test_client_reverses_and_reads_an_order(app: FastAPI, tmp_path: Path) -> None:
    async with clients(app, tmp_path) as (client, reader):
        await client.accrue("o1.i1", AccrualIn.model_validate(accrual(amount="10")))
        first = await client.reverse("o1.i1", "ref.1", ReversalIn(amount="4", currency="RUB"))
        again = await client.reverse("o1.i1", "ref.1", ReversalIn(amount="4.00", currency="RUB"))
        with pytest.raises(Conflict) as mismatch:
            await client.reverse("o1.i1", "ref.1", ReversalIn(amount="5", currency="RUB"))
        with pytest.raises(Conflict) as exceeds:
            await client.reverse("o1.i1", "ref.2", ReversalIn(amount="7", currency="RUB"))
        with pytest.raises(NotFound) as missing:
            await client.reverse("o2", "ref.3", ReversalIn(amount="1", currency="RUB"))
        order = await reader.order("o1")
        history = await reader.history("u1")
        balance = await reader.balance("u1")

    assert first.created is True
    assert (first.reversal.amount, first.reversal.taken, first.reversal.debt) == (
        "4.00",
        "4.00",
        "0.00",
    )
    assert again == ReversalResult(reversal=first.reversal, created=False)
    assert mismatch.value.code == "reversal_mismatch"
    assert exceeds.value.code == "reversal_exceeds_accrual"
    assert missing.value.code == "accrual_not_found"
    assert [a.order_id for a in order.accruals] == ["o1.i1"]
    assert order.reversals == [first.reversal]
    assert [e.kind for e in history.entries] == ["accrual", "reversal"]
    assert [(b.amount, b.debt) for b in balance.balances] == [("6.00", "0.00")]


async def test_client_sees_the_fail_switch_as_unavailable(
    tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    config = dev_config(cashback_service={"fail_accruals": True})
    ctx = make_context("cashback", tmp_path, config=config, clock=frozen_clock)
    async with running_service(ctx) as (app, _), served(app) as base_url:
        client, session = make_client(base_url, tmp_path)
        try:
            with pytest.raises(DependencyUnavailable) as error:
                await client.accrue("o1", AccrualIn.model_validate(accrual()))
        finally:
            await session.close()
    assert error.value.code == "cashback_unavailable"
