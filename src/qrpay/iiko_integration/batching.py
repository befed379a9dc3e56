"""Coalescing of concurrent status reads into few eda calls.

Every POS polls; under load most of iiko-integration's work would be one eda
round trip per poll. Instead, ids asked for while earlier eda calls are in
flight wait for the next call, which carries all of them (up to eda's limit
per call). A read never starts before the request that wants it arrived, so
no answer is older than its request; at low load every request still gets an
eda call of its own right away.

A request may bring a timeout. It covers the wait for a free call as well as
the call, so a slow eda cannot stretch a request past it in the queue. A
request that gave up leaves the queue, and a call is not kept running once
every request it serves has given up.

A call eda refuses as invalid (a 400: an id it cannot read) fails only the requests that
sent the bad ids: its requests are asked again, each in a call of its own, so one bad id
never fails another restaurant's poll that happened to share the call. Other failures
(eda down, slow) fail the whole call: asking again one by one would only multiply the
load on an eda that is already in trouble.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from qrpay.eda.schemas import OrderStatusView
from qrpay.kernel.errors import InvalidInput

Fetch = Callable[[list[str]], Awaitable[list[OrderStatusView]]]


class _Waiter:
    __slots__ = ("alone", "deadline", "future", "ids")

    def __init__(
        self,
        ids: Sequence[str],
        future: asyncio.Future[dict[str, OrderStatusView]],
        deadline: float | None,
    ) -> None:
        self.ids = ids
        self.future = future
        # The event loop's time when the request gives up; None: it waits as long as it takes.
        self.deadline = deadline
        # Its ids go in a call of their own (a shared call with them was refused as invalid).
        self.alone = False


class StatusBatcher:
    def __init__(self, fetch: Fetch, *, max_ids: int = 100, max_in_flight: int = 4) -> None:
        self._fetch = fetch
        self._max_ids = max_ids
        self._max_in_flight = max_in_flight
        self._pending: list[_Waiter] = []
        self._in_flight = 0

    async def statuses(
        self, order_ids: Sequence[str], *, timeout: float | None = None
    ) -> dict[str, OrderStatusView]:
        """The views of those of ``order_ids`` that exist, by id.

        ``TimeoutError`` if they are not there within ``timeout`` seconds, queueing included.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, OrderStatusView]] = loop.create_future()
        waiter = _Waiter(order_ids, future, None if timeout is None else loop.time() + timeout)
        self._pending.append(waiter)
        self._dispatch()
        try:
            async with asyncio.timeout_at(waiter.deadline):
                return await future
        finally:
            # Gave up (timed out or cancelled): out of the queue, if the call has not taken it.
            if waiter in self._pending:
                self._pending.remove(waiter)

    def _dispatch(self) -> None:
        while self._pending and self._in_flight < self._max_in_flight:
            batch, ids = self._take_batch()
            if not batch:
                return
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._run(batch, ids))

    def _take_batch(self) -> tuple[list[_Waiter], list[str]]:
        batch: list[_Waiter] = []
        ids: dict[str, None] = {}
        while self._pending:
            waiter = self._pending[0]
            if waiter.future.done():  # its request gave up
                self._pending.pop(0)
                continue
            new = [i for i in waiter.ids if i not in ids]
            if batch and (waiter.alone or len(ids) + len(new) > self._max_ids):
                break
            self._pending.pop(0)
            batch.append(waiter)
            ids.update(dict.fromkeys(new))
            if waiter.alone:
                break
        return batch, list(ids)

    async def _run(self, batch: list[_Waiter], ids: list[str]) -> None:
        deadlines = [waiter.deadline for waiter in batch]
        # Past the last of its requests' deadlines nobody waits for the answer.
        give_up = None if None in deadlines else max(d for d in deadlines if d is not None)
        try:
            async with asyncio.timeout_at(give_up):
                found = await self._fetch(ids)
        except InvalidInput as exc:
            if len(batch) > 1:
                # Back to the head of the queue, in their order, each to be asked alone.
                waiting = [waiter for waiter in batch if not waiter.future.done()]
                for waiter in waiting:
                    waiter.alone = True
                self._pending[:0] = waiting
            elif not batch[0].future.done():
                batch[0].future.set_exception(exc)
        except BaseException as exc:
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            by_id = {view.order_id: view for view in found}
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_result(by_id)
        finally:
            self._in_flight -= 1
            self._dispatch()
