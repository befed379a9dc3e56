"""Open-loop load: requests start on a fixed schedule, whatever happened to the earlier ones.

Request i of a stream at ``rate`` per second is due at ``start + i / rate``; its
latency is measured from that due time, not from when it was actually sent, so a
stall of the server (or of the generator) shows in the figures instead of quietly
lowering the offered load. Every answer is sorted into one outcome: ``ok`` (200),
``overloaded`` (503 ``overloaded``: a refusal), ``error`` (any other status or a
broken connection) or ``timeout`` (no answer within the client's timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from qrpay.bench import harness

OK = "ok"
OVERLOADED = "overloaded"
ERROR = "error"
TIMEOUT = "timeout"
OUTCOMES = (OK, OVERLOADED, ERROR, TIMEOUT)


@dataclass
class Stream:
    """What one stream of requests (or of whole payments) got."""

    name: str
    rate: float  # offered per second; 0 when the stream follows another (polls)
    seconds: float  # how long it was offered
    latencies: list[float] = field(default_factory=list)  # every outcome, from its due time
    refusals: list[float] = field(default_factory=list)  # the 503 overloaded ones alone
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)  # of the failures; 0: no answer
    lags: list[float] = field(default_factory=list)  # how late the generator started each one
    window: float = 0.0  # from the first due time to the last outcome
    cpu_seconds: float = 0.0  # the generator process's own CPU while it ran

    def record(self, outcome: str, latency: float, status: int = 0) -> None:
        self.outcomes[outcome] += 1
        if outcome != OK:
            self.statuses[status] += 1
        self.latencies.append(latency)
        if outcome == OVERLOADED:
            self.refusals.append(latency)

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def ok_rate(self) -> float:
        return self.outcomes[OK] / self.window if self.window else 0.0

    @property
    def failures(self) -> int:
        return self.count - self.outcomes[OK]

    def percentile_ms(self, fraction: float) -> float:
        return harness.percentile(sorted(self.latencies), fraction) * 1000

    def refusal_ms(self, fraction: float) -> float:
        return harness.percentile(sorted(self.refusals), fraction) * 1000

    def lag_ms(self, fraction: float) -> float:
        return harness.percentile(sorted(self.lags), fraction) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.latencies, default=float("nan")) * 1000


@dataclass(frozen=True)
class Answer:
    outcome: str
    status: int = 0
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def classify(status: int, body: bytes) -> str:
    if status == 200:
        return OK
    if status == 503 and b"overloaded" in body:
        return OVERLOADED
    return ERROR


async def call(
    stream: Stream | None,
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    since: float,
    **kwargs: Any,
) -> Answer:
    """One request; its outcome and latency from ``since`` (perf_counter) go to ``stream``."""
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
            answer = Answer(
                classify(response.status, body), response.status, body, response.headers
            )
    except TimeoutError:
        answer = Answer(TIMEOUT)
    except (aiohttp.ClientError, OSError):
        answer = Answer(ERROR)
    if stream is not None:
        stream.record(answer.outcome, time.perf_counter() - since, answer.status)
    return answer


async def wait_until(wall_clock: float | None) -> None:
    """Sleep until a time.time() instant, so streams in other processes start together."""
    if wall_clock is not None:
        delay = wall_clock - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def open_loop(
    stream: Stream,
    fire: Callable[[int, float], Awaitable[None]],
    *,
    count: int | None = None,
    start_at: float | None = None,
) -> None:
    """Start ``fire(i, due)`` at ``stream.rate`` per second for ``stream.seconds``; wait for all.

    ``fire`` records its own outcome(s); the lag of each start is recorded here.
    """
    total = count if count is not None else int(stream.rate * stream.seconds)
    await wait_until(start_at)
    start = time.perf_counter()

    async def one(index: int, due: float) -> None:
        stream.lags.append(time.perf_counter() - due)
        await fire(index, due)

    tasks = []
    for index in range(total):
        due = start + index / stream.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    stream.window = time.perf_counter() - start


def raise_priority() -> None:
    """Best effort (needs root): the generator stands for clients on other machines, so it
    should keep its schedule on a shared box; its own CPU is reported beside the services'."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -5)


def preload(module: str) -> int:
    """Import ``module`` in a pool's process ahead of its first job; returns the pid."""
    importlib.import_module(module)
    time.sleep(0.3)  # so that a pool's other process takes the other call
    return os.getpid()
