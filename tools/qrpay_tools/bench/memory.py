"""`python -m qrpay_tools.bench.memory`: what iiko-integration's status memory costs when full.

Fills a ``StatusMemory`` with ``--orders`` orders (the production bound, 200,000) the way
the follower does, from change-feed pages of 100 parsed from JSON, then keeps it full
while as many new orders again push the oldest out and each page's orders are asked
for, as the POS mix does. Each way of keeping an order runs in its own process, so
each RSS figure is its own: what memory kept before issue 22 (eda's pydantic view per
order) and what it keeps now. Printed per way: RSS grown and bytes per order,
objects the cyclic GC tracks, the full (generation 2) collections the GC ran by itself
with their pauses, one ``gc.collect()`` with memory full, and CPU per order learned.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from qrpay.eda.schemas import ChangesPage, OrderChange, OrderStatusView
from qrpay.iiko_integration.memory import StatusMemory, is_newer
from qrpay.iiko_integration.push import PushHub

PAGE = 500  # the follower's page of the change feed (feed.page_size)
PUSH_BUFFER = 50_000  # push.buffer_size
RESTAURANTS = 20


class Memory(Protocol):
    def learn(self, view: OrderChange) -> bool: ...

    def answers(self, order_ids: list[str], now: float) -> object: ...


class ViewMemory:
    """Memory as it was before issue 22: eda's view of each order, kept whole."""

    def __init__(self, max_orders: int) -> None:
        self.max_orders = max_orders
        self._orders: OrderedDict[str, OrderStatusView] = OrderedDict()

    def learn(self, view: OrderChange) -> bool:
        if not is_newer(view, self._orders.get(view.order_id)):
            return False
        self._orders[view.order_id] = view
        self._orders.move_to_end(view.order_id)
        while len(self._orders) > self.max_orders:
            self._orders.popitem(last=False)
        return True

    def answers(self, order_ids: list[str], now: float) -> dict[str, OrderStatusView]:
        out = {}
        for order_id in order_ids:
            view = self._orders.get(order_id)
            if view is not None:
                self._orders.move_to_end(order_id)
                out[order_id] = view
        return out


class Follower:
    """Memory and the push buffer, fed alike: all a worker keeps of the feed."""

    def __init__(self, max_orders: int) -> None:
        self.memory = StatusMemory(max_orders)
        self.hub = PushHub(lambda: PUSH_BUFFER)

    def learn(self, view: OrderChange) -> bool:
        return self.memory.learn(view)

    def answers(self, order_ids: list[str], now: float) -> object:
        return self.memory.answers(order_ids, now)


WAYS: dict[str, Callable[[int], Memory]] = {
    "views": ViewMemory,
    "tuples": StatusMemory,
    "follower": Follower,
}
LABELS = {
    "views": "pydantic view per order (before)",
    "tuples": "tuple per order (issue 22)",
    "follower": f"  the same + push buffer ({PUSH_BUFFER})",
}


def pages(count: int, first_tx: int) -> Iterator[bytes]:
    """Change-feed pages of ``count`` new orders, as eda's JSON."""
    tx = first_tx
    for start in range(0, count, PAGE):
        changes = []
        for index in range(start, min(count, start + PAGE)):
            tx += 1
            changes.append(
                {
                    "order_id": uuid.uuid4().hex,
                    "client_id": f"rest-{index % RESTAURANTS + 1}",
                    "status": "WAITING",
                    "version": 1,
                    "refunded_fully": False,
                    "change_tx": tx,
                }
            )
        cursor = f"{tx}:{changes[-1]['order_id']}"
        yield orjson.dumps({"changes": changes, "cursor": cursor, "more": True})


@dataclass
class Pauses:
    """The GC's full collections, timed through ``gc.callbacks``."""

    seconds: list[float] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        # CPU, not wall time: on a shared box a wall-clock pause is mostly other processes'.
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds.append(time.process_time() - self._started)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


# The POS mix: 19 polls of 1-5 (3 on average) of the open orders per order created.
POLLS_PER_ORDER = 19
OPEN_ORDERS = 1000


def feed(memory: Memory, count: int, first_tx: int, *, ask: bool) -> float:
    """Learn ``count`` new orders as the follower does; with ``ask``, poll the latest ones
    as the POS mix does. The longest single call, in CPU seconds."""
    after = f"{first_tx}:"
    rng = random.Random(7)
    recent: list[str] = []
    longest = 0
    for text in pages(count, first_tx):
        page = ChangesPage.model_validate_json(text)
        for change in page.changes:
            started = time.process_time_ns()
            memory.learn(change)
            longest = max(longest, time.process_time_ns() - started)
        if isinstance(memory, Follower):
            memory.hub.publish(after, page.changes, page.cursor)
        after = page.cursor
        if ask:
            recent = (recent + [change.order_id for change in page.changes])[-OPEN_ORDERS:]
            for _ in range(len(page.changes) * POLLS_PER_ORDER):
                polled = rng.sample(recent, rng.randint(1, 5))
                started = time.process_time_ns()
                memory.answers(polled, 0.0)
                longest = max(longest, time.process_time_ns() - started)
    return longest / 1e9


def collect_seconds() -> float:
    """CPU seconds of one full collection."""
    started = time.process_time()
    gc.collect()
    return time.process_time() - started


def startup_heap() -> dict[str, float]:
    """What a worker's full collections walk before it has learned anything: the objects of
    the modules it imports (its app's own objects besides), and the same once frozen."""
    import uvicorn  # noqa: F401 (imported for its objects)

    import qrpay.iiko_integration.app
    import qrpay.runner.factory  # noqa: F401

    gc.collect()
    tracked = len(gc.get_objects())
    thawed = statistics.median(collect_seconds() for _ in range(5))
    gc.freeze()
    frozen = statistics.median(collect_seconds() for _ in range(5))
    gc.unfreeze()
    return {"tracked": tracked, "collect_ms": thawed * 1000, "frozen_ms": frozen * 1000}


def measure(way: str, orders: int) -> dict[str, float]:
    """One way of keeping orders, in this process: its figures."""
    memory: Memory = WAYS[way](orders)
    feed(WAYS[way](PAGE), PAGE, 0, ask=True)  # warm up: pydantic's and the allocator's
    gc.collect()
    objects_before = len(gc.get_objects())
    collect_empty = collect_seconds()
    rss_before = rss()
    pauses = Pauses()
    gc.callbacks.append(pauses)
    cpu = time.process_time()
    feed(memory, orders, 0, ask=False)
    fill_cpu = time.process_time() - cpu
    gc.collect(0)  # what is new is in generation 0 still: it is untracked when first seen
    grown = rss() - rss_before
    tracked = len(gc.get_objects()) - objects_before
    longest = feed(memory, orders, orders, ask=True)  # full: as many again push the oldest out
    gc.callbacks.remove(pauses)
    churned = rss() - rss_before
    collects = [collect_seconds() for _ in range(3)]
    return {
        "rss_mib": grown / 2**20,
        "bytes_per_order": grown / orders,
        "churned_mib": churned / 2**20,
        "collect_empty_ms": collect_empty * 1000,
        "tracked": tracked,
        "gen2": len(pauses.seconds),
        "gen2_max_ms": max(pauses.seconds, default=0.0) * 1000,
        "gen2_total_ms": sum(pauses.seconds) * 1000,
        "collect_ms": statistics.median(collects) * 1000,
        "cpu_us_per_order": fill_cpu / orders * 1e6,
        "longest_ms": longest * 1000,
    }


ROW = "{:34} {:>8} {:>8} {:>11} {:>10} {:>9} {:>11} {:>13} {:>10} {:>12} {:>11}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--one", choices=[*WAYS, "startup"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one == "startup":
        sys.stdout.buffer.write(orjson.dumps(startup_heap()))
        return 0
    if args.one:
        sys.stdout.buffer.write(orjson.dumps(measure(args.one, args.orders)))
        return 0
    print(
        f"status memory filled with {args.orders} orders (RSS grown, bytes per order), then "
        f"{args.orders} more pushed through (RSS grown by then); the GC's own full collections "
        f"over both, with {POLLS_PER_ORDER} polls of 1-5 open orders per new one; one "
        "gc.collect() with memory full (and before filling it); the longest single learn or "
        "poll; times in CPU ms"
    )
    header = ("way", "RSS MiB", "B/order", "RSS churned", "GC objects", "gen2 runs")
    print(
        ROW.format(
            *header, "gen2 max ms", "gen2 total ms", "collect ms", "CPU us/order", "longest ms"
        )
    )
    for way in WAYS:
        command = [sys.executable, "-m", "qrpay_tools.bench.memory", "--one", way]
        output = subprocess.run(
            [*command, "--orders", str(args.orders)], check=True, capture_output=True
        ).stdout
        f = orjson.loads(output)
        print(
            ROW.format(
                LABELS[way],
                f"{f['rss_mib']:.1f}",
                f"{f['bytes_per_order']:.0f}",
                f"{f['churned_mib']:.1f}",
                f"{f['tracked']:.0f}",
                f"{f['gen2']:.0f}",
                f"{f['gen2_max_ms']:.1f}",
                f"{f['gen2_total_ms']:.1f}",
                f"{f['collect_ms']:.1f} ({f['collect_empty_ms']:.0f})",
                f"{f['cpu_us_per_order']:.1f}",
                f"{f['longest_ms']:.2f}",
            ).rstrip(),
            flush=True,
        )
    startup = orjson.loads(
        subprocess.run(
            [sys.executable, "-m", "qrpay_tools.bench.memory", "--one", "startup"],
            check=True,
            capture_output=True,
        ).stdout
    )
    print(
        f"a worker's modules, imported: {startup['tracked']:.0f} objects the GC tracks; a full "
        f"collection {startup['collect_ms']:.1f} CPU ms, {startup['frozen_ms']:.1f} once "
        "gc.freeze() has moved them out of its reach",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
