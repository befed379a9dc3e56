"""The change feed on real PostgreSQL: a write that commits after a later one is not missed,
and a follower resumes from its cursor across a restart of eda."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrpay.eda.ledger import Ledger
from qrpay.eda.payment_repository import PaymentRepository
from qrpay.eda.repository import OrderRepository
from qrpay.eda.service import OrderService
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.db import Database
from qrpay.kernel.service import service_of
from tests.support.component.eda import changes, create, start, statuses
from tests.support.ledgers import payment
from tests.support.postgres import migrate
from tests.support.private_postgres import PrivatePostgres
from tests.support.services import dev_config, dev_secdist, make_context, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.postgres


async def test_a_write_committed_after_a_later_one_is_not_missed(
    instances: list[httpx.AsyncClient], migrated_pg_url: str, frozen_clock: FrozenClock
) -> None:
    eda = instances[0]
    a = (await create(eda, "a"))["order"]["order_id"]
    b = (await create(eda, "b"))["order"]["order_id"]
    cursor = (await changes(eda, ""))["cursor"]

    db = Database(migrated_pg_url)
    try:
        async with db.write() as early:
            # The early transaction writes first (its xid is the smaller one) ...
            repo = OrderRepository(early)
            order = await repo.get(a, for_update=True)
            assert order is not None
            now = frozen_clock.now()
            whole = payment("pay-a", str(order.bill.total))
            await PaymentRepository(early).add(a, whole, "RUB", now)
            assert await repo.save(order, order.settle(Ledger(order.bill, (whole,)), now))
            # ... while a later one writes and commits through the other instance.
            paid = await start(instances[1], b, "pay-b")
            assert paid.status_code == 200, paid.text
            # The later change is committed but not served: the early one may still commit
            # below it, and a follower past it would never see that.
            held = await changes(eda, cursor)
            assert held == {"changes": [], "cursor": cursor, "more": True}
        page = await changes(eda, cursor)
    finally:
        await db.dispose()
    assert statuses(page) == [(a, "PAYMENT_IN_PROGRESS"), (b, "PAYMENT_IN_PROGRESS")]
    assert page["more"] is False


async def test_a_follower_resumes_from_its_cursor_after_eda_restarts(
    migrated_pg_url: str, tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    def eda_context(name: str) -> Any:
        secdist = dev_secdist(databases={"eda": migrated_pg_url})
        return make_context("eda", tmp_path / name, secdist=secdist, clock=frozen_clock)

    async with running_service(eda_context("first")) as (_app, eda):
        before = (await create(eda, "before"))["order"]["order_id"]
        first = await changes(eda, "")
        assert statuses(first) == [(before, "WAITING")]
        during = (await create(eda, "during"))["order"]["order_id"]
    async with running_service(eda_context("second")) as (_app, eda):
        after = (await create(eda, "after"))["order"]["order_id"]
        resumed = await changes(eda, first["cursor"])
    assert statuses(resumed) == [(during, "WAITING"), (after, "WAITING")]


async def test_a_long_poll_is_woken_by_another_instances_commit_through_notify(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    # A server of its own: the feed's horizon is the whole cluster's, and other tests'
    # transactions on a shared server could hold the answer back for longer than the test.
    url = private_postgres.admin_url
    await migrate("eda", url)
    # The timer's re-check is far longer than the test may take: only the NOTIFY that the
    # other instance's commit sends can answer the waiting long-poll in time.
    config = dev_config(feed={"recheck_ms": 10_000, "retry_ms": 50})

    def eda_context(name: str) -> Any:
        secdist = dev_secdist(databases={"eda": url})
        return make_context("eda", tmp_path / name, config=config, secdist=secdist)

    async def woken_by(writing: httpx.AsyncClient, name: str, listens: int) -> None:
        await eventually(lambda: listener.connected and listener.connections == listens)
        assert listener.connected
        assert listener.connections == listens
        cursor = (await changes(waiting, ""))["cursor"]
        poll = asyncio.create_task(changes(waiting, cursor, wait_ms=30_000))
        # The poll found nothing and waits: the write below commits after its look.
        await eventually(service.changed.has_waiters)
        assert service.changed.has_waiters()
        assert not poll.done()
        received = listener.received
        order_id = (await create(writing, name))["order"]["order_id"]
        async with asyncio.timeout(8):  # well under the 10 s re-check
            page = await poll
        assert statuses(page) == [(order_id, "WAITING")]
        assert listener.received > received

    async with (
        running_service(eda_context("waiting"), migrate=False) as (app, waiting),
        running_service(eda_context("writing"), migrate=False) as (_app, writing),
    ):
        service = service_of(app, OrderService)
        listener = service.listener
        assert listener is not None
        await woken_by(writing, "first", listens=1)
        # The server restarts: the listener connects again and the wake-ups come back.
        await asyncio.to_thread(private_postgres.restart)
        await woken_by(writing, "after-restart", listens=2)
