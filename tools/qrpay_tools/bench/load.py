"""Open-loop load: requests start on a fixed schedule, whatever happened to the earlier ones.

Request i of a stream at ``rate`` per second is due at ``start + i / rate``; its
latency is measured from that due time, not from when it was actually sent, so a
stall of the server (or of the generator) shows in the figures instead of quietly
lowering the offered load. Every answer is sorted into one outcome: ``ok`` (200),
``refused`` (503: the service, or a dependency's bulkhead, turned it away; how fast
shows in the refusals' latency), ``error`` (any other status or a broken connection) or
``timeout`` (no answer within the client's timeout). Failures are also counted by what
they were: "503 overloaded", "503 eda_unavailable", "502", "timeout", "connection".
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import uvloop

from qrpay_tools.bench import harness, wire

OK = "ok"
REFUSED = "refused"
ERROR = "error"
TIMEOUT = "timeout"
OUTCOMES = (OK, REFUSED, ERROR, TIMEOUT)
T = TypeVar("T")
TICK = 0.001  # the generator's shortest sleep: a request may start up to this late


@dataclass
class Stream:
    """What one stream of requests (or of whole payments) got."""

    name: str
    rate: float  # offered per second; 0 when the stream follows another (polls)
    seconds: float  # how long it was offered
    latencies: list[float] = field(default_factory=list)  # every outcome, from its due time
    refusals: list[float] = field(default_factory=list)  # the 503s alone
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # the failures, by what they were
    lags: list[float] = field(default_factory=list)  # how late the generator started each one
    window: float = 0.0  # from the first due time to the last outcome
    cpu_seconds: float = 0.0  # the generator process's own CPU while it ran
    # Latencies by what was asked, for a stream mixing requests (the POS mix: a slow
    # creation and a slow poll have different causes).
    by_request: dict[str, list[float]] = field(default_factory=dict)

    def record(self, outcome: str, latency: float, kind: str = "", request: str = "") -> None:
        if request:
            self.by_request.setdefault(request, []).append(latency)
        self.outcomes[outcome] += 1
        if outcome != OK:
            self.kinds[kind or outcome] += 1
        self.latencies.append(latency)
        if outcome == REFUSED:
            self.refusals.append(latency)

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def ok_rate(self) -> float:
        """Answers 200 per second of offered load (all of them: a late one counts too, and
        none is later than the client's timeout)."""
        return self.outcomes[OK] / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return self.count - self.outcomes[OK]

    def percentile_ms(self, fraction: float) -> float:
        return harness.percentile(sorted(self.latencies), fraction) * 1000

    def request_ms(self, request: str, fraction: float) -> float:
        return harness.percentile(sorted(self.by_request.get(request, [])), fraction) * 1000

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
    kind: str = ""  # what a failure was: "503 overloaded", "502", "timeout", "connection"


def classify(status: int, body: bytes) -> tuple[str, str]:
    """(outcome, kind) of an HTTP answer; the kind names the error code of a JSON body."""
    if status == 200:
        return OK, ""
    code = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        code = str(orjson.loads(body).get("code") or "")
    kind = f"{status} {code}".strip()
    return (REFUSED if status == 503 else ERROR), kind


async def call(
    stream: Stream | None,
    client: wire.Client,
    method: str,
    path: str,
    *,
    since: float,
    timeout: float,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    request: str = "",
) -> Answer:
    """One request; its outcome and latency from ``since`` (perf_counter) go to ``stream``
    (also under ``request``, when the stream mixes requests)."""
    try:
        response = await client.request(
            method, path, body=body, params=params, headers=headers, timeout=timeout
        )
        outcome, kind = classify(response.status, response.body)
        answer = Answer(outcome, response.status, response.body, response.headers, kind)
    except TimeoutError:
        answer = Answer(TIMEOUT, kind="timeout")
    except (OSError, ValueError, IndexError) as exc:
        # OSError: refused or broken connection; ValueError/IndexError: a garbled answer.
        answer = Answer(ERROR, kind=f"connection ({type(exc).__name__})")
    if stream is not None:
        stream.record(answer.outcome, time.perf_counter() - since, answer.kind, request)
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
            # At least a millisecond: at thousands a second, one wake-up starts a few.
            await asyncio.sleep(max(delay, TICK))
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    stream.window = time.perf_counter() - start


def run_in_process(main: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """The body of a load-generator process: ``main`` under uvloop at a raised priority;
    returns its result and the CPU seconds this process spent on it."""
    raise_priority()
    began = time.process_time()
    result = uvloop.run(main)
    return result, time.process_time() - began


def raise_priority() -> None:
    """Best effort (needs root): the generator stands for clients on other machines, so it
    should keep its schedule on a 2-core box that the services saturate (at nice -5 it
    still started requests a second late there); its own CPU is reported beside theirs."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)


def preload(module: str) -> int:
    """Import ``module`` in a pool's process ahead of its first job; returns the pid."""
    importlib.import_module(module)
    time.sleep(0.3)  # so that a pool's other process takes the other call
    return os.getpid()
