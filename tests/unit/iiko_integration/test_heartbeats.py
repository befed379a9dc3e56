"""The streams' heartbeats on one timer per instance (``push.Heartbeats``), on an injected
clock and phases: pings spread over the period, never later than a period, a change puts
the next one off, and a burst is handed out a batch per turn of the event loop."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from qrpay.iiko_integration.push import Heartbeats, Subscription

PERIOD = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def phases(*values: float) -> Iterator[float]:
    yield from values


def subscription() -> Subscription:
    return Subscription(frozenset({"rest-1"}), max_queued=10, floor=(0, ""))


def heartbeats(clock: Clock, phase: Iterator[float], batch: int = 10_000) -> Heartbeats:
    return Heartbeats(lambda: PERIOD, clock=clock, phase=lambda: next(phase), batch=batch)


@contextmanager
def beating(
    clock: Clock, *phase: float, batch: int = 10_000
) -> Iterator[tuple[Heartbeats, list[Subscription]]]:
    """Heartbeats with one stream added per phase, in that order; closed at the end."""
    beats = heartbeats(clock, phases(*phase), batch)
    streams = [subscription() for _ in phase]
    for stream in streams:
        beats.add(stream)
    try:
        yield beats, streams
    finally:
        beats.close()


async def test_connections_opened_together_ping_spread_over_the_period() -> None:
    clock = Clock()
    count = 1000
    with beating(clock, *(n / count for n in range(count))) as (beats, streams):
        # A tenth of the period at a time: a tenth of the connections each time.
        woken_per_step = []
        for step in range(1, 11):
            clock.now = step * PERIOD / 10
            woken_per_step.append(len(beats.due()))
        assert woken_per_step == [100] * 10
        assert all(stream.ping_due for stream in streams)
        # Every one pings a period after its first ping: they stay spread.
        for stream in streams:
            stream.take_ping()
        clock.now = PERIOD + PERIOD / 10
        assert len(beats.due()) == 100


async def test_the_first_ping_is_never_later_than_a_period() -> None:
    clock = Clock()
    # The largest phase random.random() gives is below 1: at worst right after connecting,
    # at best (phase 0) exactly one period later.
    with beating(clock, 0.0, 0.999) as (beats, (late, early)):
        clock.now = PERIOD * 0.001
        assert beats.due() == [early]
        clock.now = PERIOD - 0.01
        assert beats.due() == []
        clock.now = PERIOD
        assert beats.due() == [late]


async def test_a_change_sent_puts_the_next_ping_a_period_after_it() -> None:
    clock = Clock()
    with beating(clock, 0.5) as (beats, (stream,)):  # due at 7.5
        clock.now = 5.0
        beats.sent_change(stream)
        clock.now = 7.5
        assert beats.due() == []
        assert not stream.ping_due
        clock.now = 5.0 + PERIOD
        assert beats.due() == [stream]
        assert stream.take_ping()
        # Quiet from here: the next one a period after that ping.
        clock.now = 5.0 + 2 * PERIOD - 0.01
        assert beats.due() == []
        clock.now = 5.0 + 2 * PERIOD
        assert beats.due() == [stream]


async def test_a_closed_connection_is_dropped() -> None:
    clock = Clock()
    with beating(clock, 0.5, 0.5) as (beats, (gone, stays)):
        gone.closed = True
        clock.now = PERIOD
        assert beats.due() == [stays]
        assert len(beats) == 1


async def test_a_burst_of_due_pings_is_handed_out_a_batch_per_loop_turn() -> None:
    clock = Clock()
    with beating(clock, *[0.5] * 5, batch=2) as (beats, streams):
        clock.now = PERIOD
        # What the timer does when it fires: one batch now, the next on the loop's next turn.
        beats._fire()
        assert [stream.ready.is_set() for stream in streams].count(True) == 2
        turns = Counter[int]()
        for turn in range(1, 4):
            await asyncio.sleep(0)  # the loop's next turn: the timer's follow-up ran first
            turns[turn] = [stream.ready.is_set() for stream in streams].count(True)
        assert list(turns.values()) == [4, 5, 5]
