import asyncio

import pytest

from qrpay.eda.schemas import OrderStatus, OrderStatusView
from qrpay.iiko_integration.batching import StatusBatcher
from qrpay.kernel.errors import DependencyUnavailable, InvalidInput


class FakeEda:
    def __init__(self, *, gated: bool = False) -> None:
        self.calls: list[list[str]] = []
        # While set to an unset event, every call waits for it: eda holds its answers.
        self.gate: asyncio.Event | None = asyncio.Event() if gated else None
        self.status = OrderStatus.WAITING
        self.fail = False
        # Ids eda cannot read: a call carrying any of them is a 400.
        self.refused: set[str] = set()

    async def statuses(self, ids: list[str]) -> list[OrderStatusView]:
        self.calls.append(ids)
        status = self.status  # what the database says when the read starts
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise DependencyUnavailable("down", code="eda_unavailable")
        if self.refused.intersection(ids):
            raise InvalidInput("order_ids: not valid", code="invalid_request")
        assert len(ids) <= 100
        return [
            OrderStatusView(order_id=i, client_id="r", status=status) for i in ids if i != "missing"
        ]

    def answer(self) -> None:
        """Let the held calls answer."""
        assert self.gate is not None
        self.gate.set()

    async def first_call(self) -> None:
        """Return once the first call is under way."""
        while not self.calls:
            await asyncio.sleep(0)


def one_call_at_a_time() -> tuple[FakeEda, StatusBatcher]:
    """A batcher allowed one call at a time, over an eda that answers once its gate is set."""
    eda = FakeEda(gated=True)
    return eda, StatusBatcher(eda.statuses, max_in_flight=1)


async def test_a_lone_request_gets_its_own_call() -> None:
    eda = FakeEda()
    found = await StatusBatcher(eda.statuses).statuses(["a", "missing"])
    assert set(found) == {"a"}
    assert eda.calls == [["a", "missing"]]


async def test_concurrent_requests_share_calls() -> None:
    eda, batcher = one_call_at_a_time()
    first = asyncio.create_task(batcher.statuses(["o0"]))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.statuses([f"o{i}", "o0"])) for i in range(1, 40)]
    await asyncio.sleep(0)
    eda.answer()
    results = await asyncio.gather(first, *others)
    assert len(eda.calls) == 2  # the first alone, then everything that queued behind it
    assert sorted(eda.calls[1]) == sorted({f"o{i}" for i in range(40)})
    assert all(f"o{i}" in results[i] for i in range(40))


async def test_batches_respect_the_id_limit() -> None:
    eda, batcher = one_call_at_a_time()
    blocker = asyncio.create_task(batcher.statuses(["x"]))
    await asyncio.sleep(0)
    tasks = [
        asyncio.create_task(batcher.statuses([f"{n}-{k}" for k in range(5)])) for n in range(50)
    ]
    await asyncio.sleep(0)
    eda.answer()
    await asyncio.gather(blocker, *tasks)
    assert sum(len(c) for c in eda.calls) == 1 + 250
    assert max(len(c) for c in eda.calls) == 100


async def test_no_answer_is_older_than_its_request() -> None:
    eda, batcher = one_call_at_a_time()
    early = asyncio.create_task(batcher.statuses(["o"]))
    await eda.first_call()
    # The order is paid while the first read is under way; a poll arriving now must see it.
    eda.status = OrderStatus.PAYED
    late = asyncio.create_task(batcher.statuses(["o"]))
    await asyncio.sleep(0)
    eda.answer()
    assert (await early)["o"].status is OrderStatus.WAITING
    assert (await late)["o"].status is OrderStatus.PAYED


async def test_a_failure_reaches_every_waiter_of_the_batch_only() -> None:
    eda = FakeEda()
    eda.fail = True
    batcher = StatusBatcher(eda.statuses)
    results = await asyncio.gather(
        batcher.statuses(["a"]), batcher.statuses(["b"]), return_exceptions=True
    )
    assert all(isinstance(r, DependencyUnavailable) for r in results)
    eda.fail = False
    assert "c" in await batcher.statuses(["c"])


async def test_an_id_eda_refuses_fails_only_the_request_that_sent_it() -> None:
    eda, batcher = one_call_at_a_time()
    eda.refused = {"bad\x00"}
    blocker = asyncio.create_task(batcher.statuses(["x"]))
    await eda.first_call()
    # Three restaurants' polls queue up behind the first call and share the next one.
    polls = [asyncio.create_task(batcher.statuses(ids)) for ids in (["a"], ["bad\x00", "b"], ["c"])]
    await asyncio.sleep(0)
    eda.answer()
    _first, a, bad, c = await asyncio.gather(blocker, *polls, return_exceptions=True)
    assert isinstance(bad, InvalidInput)
    assert isinstance(a, dict)
    assert "a" in a
    assert isinstance(c, dict)
    assert "c" in c
    # The shared call is refused, then each of its polls is asked alone, in order.
    assert eda.calls[1:] == [["a", "bad\x00", "b", "c"], ["a"], ["bad\x00", "b"], ["c"]]


async def test_the_timeout_covers_the_wait_for_a_free_call() -> None:
    eda, batcher = one_call_at_a_time()  # and eda never answers
    first = asyncio.create_task(batcher.statuses(["a"], timeout=0.2))
    await eda.first_call()
    await asyncio.sleep(0.1)
    # Queued behind the first call for 0.1 s: it still gives up 0.2 s after it asked.
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await batcher.statuses(["b"], timeout=0.2)
    assert loop.time() - started < 0.2 + 0.1
    with pytest.raises(TimeoutError):
        await first


async def test_a_request_that_gave_up_leaves_the_queue() -> None:
    eda, batcher = one_call_at_a_time()
    blocker = asyncio.create_task(batcher.statuses(["x"]))
    await eda.first_call()
    with pytest.raises(TimeoutError):
        await batcher.statuses(["gave-up"], timeout=0.05)
    waiting = asyncio.create_task(batcher.statuses(["later"]))
    await asyncio.sleep(0)
    eda.answer()
    assert "later" in await waiting
    await blocker
    # The next call carried only the request still waiting.
    assert eda.calls == [["x"], ["later"]]


async def test_a_call_is_cut_when_all_its_requests_gave_up() -> None:
    eda, batcher = one_call_at_a_time()  # and eda never answers
    with pytest.raises(TimeoutError):
        await batcher.statuses(["a"], timeout=0.05)
    # The call's slot is free again: the next request gets a call of its own at once.
    eda.gate = None
    assert "b" in await batcher.statuses(["b"], timeout=1)
    assert eda.calls == [["a"], ["b"]]


async def test_without_a_timeout_a_request_waits_for_its_answer() -> None:
    eda = FakeEda(gated=True)
    batcher = StatusBatcher(eda.statuses)
    task = asyncio.create_task(batcher.statuses(["a"]))
    await asyncio.sleep(0.1)
    assert not task.done()
    eda.answer()
    assert "a" in await task
