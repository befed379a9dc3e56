"""Coalescing of concurrent status reads into few eda calls.

Every POS polls; under load most of iiko-integration's work would be one eda
round trip per poll. Instead, ids asked for while earlier eda calls are in
flight wait for the next call, which carries all of them (up to eda's limit
per call). A read never starts before the request that wants it arrived, so
no answer is older than its request; at low load every request still gets an
eda call of its own right away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from qrpay.eda.schemas import OrderStatusView

Fetch = Callable[[list[str]], Awaitable[list[OrderStatusView]]]


class _Waiter:
    __slots__ = ("future", "ids")

    def __init__(self, ids: Sequence[str], future: asyncio.Future[dict[str, OrderStatusView]]):
        self.ids = ids
        self.future = future


class StatusBatcher:
    def __init__(self, fetch: Fetch, *, max_ids: int = 100, max_in_flight: int = 4) -> None:
        self._fetch = fetch
        self._max_ids = max_ids
        self._max_in_flight = max_in_flight
        self._pending: list[_Waiter] = []
        self._in_flight = 0

    async def statuses(self, order_ids: Sequence[str]) -> dict[str, OrderStatusView]:
        """The views of those of ``order_ids`` that exist, by id."""
        future: asyncio.Future[dict[str, OrderStatusView]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append(_Waiter(order_ids, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._pending and self._in_flight < self._max_in_flight:
            batch, ids = self._take_batch()
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._run(batch, ids))

    def _take_batch(self) -> tuple[list[_Waiter], list[str]]:
        batch: list[_Waiter] = []
        ids: dict[str, None] = {}
        while self._pending:
            waiter = self._pending[0]
            new = [i for i in waiter.ids if i not in ids]
            if batch and len(ids) + len(new) > self._max_ids:
                break
            self._pending.pop(0)
            batch.append(waiter)
            ids.update(dict.fromkeys(new))
        return batch, list(ids)

    async def _run(self, batch: list[_Waiter], ids: list[str]) -> None:
        try:
            found = await self._fetch(ids)
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
