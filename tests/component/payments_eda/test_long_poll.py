"""The guest's long-poll on the payment status (``wait_ms``, issue 22).

eda is faked (``FakeEda``); its change feed is not: the follower's pages are handed to it
here (``apply``), as its job would after reading them. ``polling_delay_seconds`` is a
minute, so an answer that came before it came from a wake, not from a re-read by time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from qrpay.eda.schemas import ChangesPage, OrderChange, OrderStatus
from tests.support.component.payments_eda import (
    BASE,
    CLIENT_ID,
    ORDER_ID,
    Env,
    payment_body,
    signature,
)
from tests.support.waiting import eventually

SLOW_POLLS = {"payments": {"polling_delay_seconds": "60"}}
# Long enough that an answer before it is the wake's doing (and the test's upper bound).
LONG_WAIT_MS = 30_000


def _params(**extra: Any) -> dict[str, Any]:
    return {"order_id": ORDER_ID, "hmac": signature(), **extra}


def _page(*order_ids: str) -> ChangesPage:
    changes = [
        OrderChange(
            order_id=order_id,
            client_id=CLIENT_ID,
            status=OrderStatus.PAYED,
            version=2,
            change_tx=7,
        )
        for order_id in order_ids
    ]
    return ChangesPage(changes=changes, cursor="7:" + order_ids[-1], more=False)


def _follow(env: Env) -> None:
    """The follower as if its last read had left nothing behind: current (the clock is frozen)."""
    follower = env.service.follower
    follower.current_as_of = env.ctx.clock.monotonic()
    assert follower.is_fresh()


async def _at_once(env: Env) -> httpx.Response:
    """A long-poll that must not wait: bounded at a third of its wait, so one that waited
    fails here instead of passing late."""
    request = env.client.get(f"{BASE}/orders", params=_params(wait_ms=LONG_WAIT_MS))
    return await asyncio.wait_for(request, LONG_WAIT_MS / 1000 / 3)


async def _waiting(env: Env, path: str, **params: Any) -> asyncio.Task[httpx.Response]:
    answer = asyncio.create_task(env.client.get(f"{BASE}/{path}", params=_params(**params)))
    await eventually(lambda: env.service.waits.parked == 1 or answer.done())
    assert not answer.done(), answer.result().text
    return answer


async def test_a_waiting_guest_is_answered_when_the_feed_brings_their_order(
    pe_factory: Any,
) -> None:
    async with pe_factory(**SLOW_POLLS) as env:
        eda = env.eda(payment_body("p1", "holding"))
        _follow(env)
        answer = await _waiting(env, "orders", wait_ms=LONG_WAIT_MS)
        reads = eda.ledger_route.times_called

        env.service.follower.apply("", _page("another-order"))
        await asyncio.sleep(0)
        assert not answer.done()  # another order's change wakes nobody here
        assert eda.ledger_route.times_called == reads

        eda.payments["p1"]["state"] = "paid"
        env.service.follower.apply("", _page(ORDER_ID))
        done = await answer
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "PAYED"
        assert done.json()["payment_id"] == "p1"
        assert "X-Polling-Delay" in done.headers
        assert env.service.waits.count == 0


async def test_a_wake_that_changed_nothing_keeps_the_guest_waiting(pe_factory: Any) -> None:
    async with pe_factory(**SLOW_POLLS) as env:
        eda = env.eda(payment_body("p1", "holding"))
        _follow(env)
        answer = await _waiting(env, "orders", wait_ms=LONG_WAIT_MS)
        reads = eda.ledger_route.times_called
        env.service.follower.apply("", _page(ORDER_ID))  # e.g. the bill's version moved
        await eventually(lambda: eda.ledger_route.times_called > reads)
        await asyncio.sleep(0)
        assert not answer.done()
        eda.payments["p1"]["state"] = "released"
        env.service.follower.apply("", _page(ORDER_ID))
        assert (await answer).json()["status"] == "DECLINED"


async def test_a_share_waits_the_same_way(pe_factory: Any) -> None:
    async with pe_factory(**SLOW_POLLS) as env:
        eda = env.eda(payment_body("s1", "holding"), payment_body("s2", "holding"))
        _follow(env)
        answer = await _waiting(env, "orders/share", share_id="s1", wait_ms=LONG_WAIT_MS)
        eda.payments["s1"]["state"] = "paid"
        env.service.follower.apply("", _page(ORDER_ID))
        done = (await answer).json()
        assert (done["share_id"], done["status"]) == ("s1", "PAYED")


async def test_nothing_changes_the_answer_comes_at_wait_ms_with_the_current_status(
    pe_factory: Any,
) -> None:
    async with pe_factory(**SLOW_POLLS) as env:
        env.eda(payment_body("p1", "holding"))
        _follow(env)
        answer = await env.client.get(f"{BASE}/orders", params=_params(wait_ms=50))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "WAITING"
        assert env.service.waits.count == 0


async def test_an_outcome_already_there_is_answered_at_once(pe_factory: Any) -> None:
    async with pe_factory(**SLOW_POLLS) as env:
        env.eda(payment_body("p1", "paid"))
        _follow(env)
        answer = await _at_once(env)
        assert answer.json()["status"] == "PAYED"


async def test_without_a_current_follower_the_waiter_reads_eda_again_by_itself(
    pe_factory: Any,
) -> None:
    """The follower not current (eda's feed down, say): no wake comes, the waiter reads the
    ledger every ``polling_delay_seconds`` and still answers the change."""
    async with pe_factory(payments={"polling_delay_seconds": "0.05"}) as env:
        eda = env.eda(payment_body("p1", "holding"))
        assert not env.service.follower.is_fresh()
        answer = await _waiting(env, "orders", wait_ms=LONG_WAIT_MS)
        eda.payments["p1"]["state"] = "paid"
        assert (await answer).json()["status"] == "PAYED"


async def test_past_max_waiting_a_guest_is_answered_at_once(pe_factory: Any) -> None:
    async with pe_factory(payments={"polling_delay_seconds": "60", "max_waiting": 0}) as env:
        env.eda(payment_body("p1", "holding"))
        _follow(env)
        answer = await _at_once(env)
        assert answer.json()["status"] == "WAITING"
        assert answer.headers["X-Polling-Delay"] == "60"


async def test_waiting_guests_hold_no_in_flight_slot(pe_factory: Any) -> None:
    """With room for one request at a time, a guest waiting does not shed the next one."""
    async with pe_factory(http={"max_in_flight": 1}, **SLOW_POLLS) as env:
        eda = env.eda(payment_body("p1", "holding"))
        _follow(env)
        answer = await _waiting(env, "orders", wait_ms=LONG_WAIT_MS)
        other = await env.client.get(f"{BASE}/orders", params=_params())
        assert other.status_code == 200, other.text
        eda.payments["p1"]["state"] = "paid"
        env.service.follower.apply("", _page(ORDER_ID))
        assert (await answer).json()["status"] == "PAYED"


async def test_wait_ms_is_bounded(pe_factory: Any) -> None:
    async with pe_factory() as env:
        env.eda(payment_body("p1", "holding"))
        for wait in ("-1", "30001", "soon"):
            answer = await env.client.get(f"{BASE}/orders", params=_params(wait_ms=wait))
            assert answer.status_code == 400, (wait, answer.text)
