"""`make bench-pos`: the POS mix against iiko-integration and eda on PostgreSQL.

Starts both services with `qrpay serve` on a fresh PostgreSQL database, drives
the mix (95% POST /orders/list with 1-5 ids, 5% POST /orders) with wrk for the
maximum throughput, then at a fixed rate with an open-loop generator for the
latency (measured from each request's scheduled start, so a stall is not
hidden), and measures a bare FastAPI JSON endpoint served the same way as the
baseline in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import uvloop

from qrpay_tools import local
from qrpay_tools.bench import harness, load, wire
from qrpay_tools.identity import stand_in_ticket
from qrpay_tools.ports import free_port_block
from qrpay_tools.pos_sim.push import stream_messages, stream_url

API_KEY = "demo-pos-key-0123456789abcdef"
LUA = Path(__file__).with_name("pos_mix.lua")


def bill(amount: str = "1500.00") -> dict[str, object]:
    return {
        "currency": "RUB",
        "amount": amount,
        "elements": [
            {"name": "Borscht", "amount": "700.00"},
            {"name": "Pelmeni", "amount": "800.00"},
        ],
    }


ATTEMPTS = 5  # of one order's creation, on a refusal, an error or a timeout


@dataclass(frozen=True)
class Order:
    """An order created through the POS API, with the hmac of its QR deep link."""

    order_id: str
    hmac: str


async def create_orders(
    base_url: str, count: int, *, prefix: str | None = None, concurrency: int = 50
) -> list[Order]:
    """``count`` new orders through POST /orders, ``concurrency`` at a time."""
    stamp = prefix or f"seed-{uuid.uuid4().hex[:8]}-"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}, timeout=timeout) as session:

        async def create(index: int) -> Order:
            body = {"client_id": "rest-1", "internal_order_id": f"{stamp}{index}", "bill": bill()}
            for attempt in range(1, ATTEMPTS + 1):
                # Create-or-get on internal_order_id: a retry never makes a second order.
                try:
                    async with session.post(f"{base_url}/orders", json=body) as response:
                        response.raise_for_status()
                        data = await response.json()
                    break
                except (aiohttp.ClientError, TimeoutError):
                    if attempt == ATTEMPTS:
                        raise
                    await asyncio.sleep(0.5 * attempt)
            link = next(line["value"] for line in data["bill_lines"] if line["type"] == "qr-code")
            query = parse_qs(urlsplit(link).query)
            return Order(str(data["order_id"]), query["hmac"][0])

        orders: list[Order] = []
        for start in range(0, count, concurrency):
            batch = range(start, min(count, start + concurrency))
            orders += await asyncio.gather(*(create(i) for i in batch))
        return orders


async def seed_orders(base_url: str, count: int) -> list[str]:
    return [order.order_id for order in await create_orders(base_url, count)]


class Mix:
    """The POS mix: 95% a status poll of 1-5 known ids, 5% a new order.

    The poll bodies are drawn once (a thousand of them, used in turn) so that making a
    request costs the generator next to nothing at thousands a second.
    """

    def __init__(self, ids: list[str], *, seed: int = 7, polls: int = 1000) -> None:
        self.rng = random.Random(seed)
        self.prefix = f"mix-{uuid.uuid4().hex[:8]}-"
        self.polls = [
            orjson.dumps(
                {"client_id": "rest-1", "orders": self.rng.sample(ids, self.rng.randint(1, 5))}
            )
            for _ in range(polls)
        ]
        self.bill = orjson.dumps(bill()).decode()

    def request(self, index: int) -> tuple[str, bytes]:
        if self.rng.random() < 0.05:
            body = (
                f'{{"client_id":"rest-1","internal_order_id":"{self.prefix}{index}",'
                f'"bill":{self.bill}}}'
            )
            return "/orders", body.encode()
        return "/orders/list", self.polls[index % len(self.polls)]


@dataclass(frozen=True)
class MixJob:
    """A POS mix stream: in this process (``mix_stream``) or its own (``run_mix_job``)."""

    base_url: str
    ids: list[str]
    rate: float
    seconds: float
    timeout: float = 30.0
    connections: int = 512
    start_at: float | None = None


async def mix_stream(job: MixJob, name: str = "POS mix") -> load.Stream:
    """The POS mix in an open loop at ``job.rate`` per second (see qrpay_tools.bench.load)."""
    stream = load.Stream(name, job.rate, job.seconds)
    client = wire.Client(job.base_url, connections=job.connections, headers={"X-API-Key": API_KEY})
    mix = Mix(job.ids)

    async def fire(index: int, due: float) -> None:
        path, body = mix.request(index)
        await load.call(
            stream, client, "POST", path, since=due, timeout=job.timeout, body=body, request=path
        )

    try:
        await load.open_loop(stream, fire, start_at=job.start_at)
    finally:
        client.close()
    return stream


def by_request_line(stream: load.Stream) -> str:
    """The mix's p50/p99 by route: a creation waits on eda, a poll is answered from memory."""
    parts = [
        f"{path} p50 {stream.request_ms(path, 0.5):.2f} ms, p99 {stream.request_ms(path, 0.99):.2f}"
        f" ms ({len(latencies)})"
        for path, latencies in sorted(stream.by_request.items(), key=lambda item: -len(item[1]))
    ]
    return f"  by route: {'; '.join(parts)}" if parts else "  by route: no requests"


def run_mix_job(job: MixJob) -> load.Stream:
    """Entry point of a load-generator process: the POS mix stream, with its own CPU."""
    stream, cpu = load.run_in_process(mix_stream(job))
    stream.cpu_seconds = cpu
    return stream


ROW = "{:46} {:>8} {:>9} {:>9} {:>7}  {}"

# The targets of issue 10, printed beside the figures they judge.
TARGET_RPS = 5000.0
TARGET_RATIO = 0.33
TARGET_RATE = 1500.0
TARGET_P99_MS = 20.0
TARGET_STALENESS_MS = 1000.0
TARGET_PUSH_STALENESS_MS = 200.0


def row(label: str, rps: float, p50: float, p99: float, errors: int, target: str = "") -> str:
    return ROW.format(label, f"{rps:.0f}", f"{p50:.2f}", f"{p99:.2f}", errors, target).rstrip()


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def fixed_target(rate: float, p99_ms: float, errors: int) -> str:
    """The target beside a fixed-rate run: only the target rate has one."""
    if rate != TARGET_RATE:
        return ""
    met = p99_ms <= TARGET_P99_MS and errors == 0
    return f"target p99 <= {TARGET_P99_MS:.0f} ms, 0 errors: {verdict(met)}"


@dataclass
class CpuMeter:
    """CPU seconds of the measured processes (each with its workers) between two samples."""

    processes: dict[str, int]  # label -> pid
    databases: tuple[str, ...] = ()
    _before: dict[str, float] = field(default_factory=dict)
    _postgres: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {name: harness.cpu_seconds(pid) for name, pid in self.processes.items()}
        if self.databases:
            self._postgres = harness.postgres_cpu_by_process(self.databases)

    def spent(self) -> dict[str, float]:
        spent = {
            name: harness.cpu_seconds(pid) - self._before[name]
            for name, pid in self.processes.items()
        }
        if self.databases:
            after = harness.postgres_cpu_by_process(self.databases)
            spent["postgres"] = harness.cpu_spent(self._postgres, after)
        return spent


def cpu_line(spent: dict[str, float], requests: int) -> str:
    """CPU ms per request, by process and in all (the load generator's own left out)."""
    if not requests:
        return "  CPU per request: no requests"
    parts = [f"{name} {seconds * 1000 / requests:.3f}" for name, seconds in spent.items()]
    total = sum(spent.values()) * 1000 / requests
    return f"  CPU ms per request: {', '.join(parts)}; all {total:.3f}"


@dataclass
class Staleness:
    """From eda's commit of a status change to the first POS answer that shows it."""

    delays: list[float] = field(default_factory=list)
    missed: int = 0  # changes the POS was not shown within the probe's patience
    failed: int = 0  # changes eda did not make (refused or timed out under the load)

    def p99_ms(self) -> float:
        return harness.percentile(sorted(self.delays), 0.99) * 1000

    def record(self, sent: float, shown: float | None) -> None:
        if shown is None:
            self.missed += 1
        else:
            self.delays.append(shown - sent)

    def line(self, how: str, target_ms: float) -> str:
        met = self.p99_ms() <= target_ms and not self.missed
        return (
            f"  staleness (eda commit -> {how}, under this mix): p99 {self.p99_ms():.0f} ms "
            f"over {len(self.delays)} changes, {self.missed} not seen, {self.failed} not made; "
            f"target p99 <= {target_ms:.0f} ms: {verdict(met)}"
        )


@dataclass
class Probed:
    """The same changes as a polling POS and a POS on the stream saw them."""

    polling: Staleness = field(default_factory=Staleness)
    push: Staleness = field(default_factory=Staleness)
    # Times the stream was lost and resumed from its cursor: its delays include the gap.
    stream_drops: int = 0


class StreamWatch:
    """A POS subscribed to a restaurant's WebSocket stream: when it first heard of each
    order as PAYED. A dropped stream is resumed from its last cursor: no change is lost."""

    def __init__(self, iiko_url: str, client_id: str = "rest-1") -> None:
        self.url = stream_url(iiko_url)
        self.client_id = client_id
        self.paid: dict[str, float] = {}
        self._paid_events: dict[str, asyncio.Event] = {}
        self.connected = asyncio.Event()
        self.drops = 0

    def _event(self, order_id: str) -> asyncio.Event:
        return self._paid_events.setdefault(order_id, asyncio.Event())

    async def run(self, retry_after: float = 0.1) -> None:
        cursor: str | None = None
        async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:
            while True:
                params = {"client_id": self.client_id, **({"after": cursor} if cursor else {})}
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.ws_connect(self.url, params=params) as ws:
                        self.connected.set()
                        async for data in stream_messages(ws):
                            cursor = data.get("cursor") or cursor
                            if data.get("type") == "change" and data.get("status") == "PAYED":
                                self.paid.setdefault(data["id"], time.perf_counter())
                                self._event(data["id"]).set()
                self.drops += 1
                await asyncio.sleep(retry_after)

    async def first_shown(self, order_id: str, sent: float, patience: float) -> float | None:
        """When the stream first delivered the order PAYED; None past ``patience``, or at
        once if the stream never connected."""
        if not self.connected.is_set():
            return None
        left = patience - (time.perf_counter() - sent)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event(order_id).wait(), max(0.0, left))
        return self.paid.get(order_id)


async def probe_staleness(
    iiko_url: str,
    eda_url: str,
    orders: list[str],
    *,
    seconds: float,
    poll_every: float = 0.01,
    patience: float = 10.0,
) -> Probed:
    """Pay one order after another in eda (a payment of everything left started, then
    completed: the POS sees WAITING -> PAYMENT_IN_PROGRESS -> PAYED) and watch iiko-integration for it like two POS do: one polls until
    an answer shows PAYED, one is subscribed to the restaurant's WebSocket stream.

    The delay runs from the moment the completion was sent to eda (the commit is after it,
    so the figure is an upper bound by up to eda's own answer time) to the poll answer, or
    the stream's message, showing it.
    """
    result = Probed()
    watch = StreamWatch(iiko_url)
    watching = asyncio.create_task(watch.run())
    pos = wire.Client(iiko_url, connections=4, headers={"X-API-Key": API_KEY})
    eda = wire.Client(eda_url, connections=2, ticket=stand_in_ticket("payments-eda", "eda"))
    pause = seconds / max(1, len(orders))

    async def move(order_id: str, step: str, body: Mapping[str, object]) -> None:
        path = f"/v1/orders/{order_id}/payments/{step}"
        answer = await eda.request("POST", path, body=orjson.dumps(body), timeout=patience)
        if answer.status != 200:
            raise ValueError(f"eda refused {step}: {answer.status} {answer.body!r}")

    async def first_shown(order_id: str, sent: float) -> float | None:
        """When a poll first showed the order PAYED; None past ``patience``. A poll that
        failed (refused, timed out: the box is overloaded) did not show it."""
        poll = orjson.dumps({"client_id": "rest-1", "orders": [order_id]})
        while (left := patience - (time.perf_counter() - sent)) > 0:
            with contextlib.suppress(TimeoutError, OSError, ValueError, IndexError):
                seen = await pos.request("POST", "/orders/list", body=poll, timeout=left)
                if seen.status == 200 and b"PAYED" in seen.body:
                    return time.perf_counter()
            await asyncio.sleep(poll_every)
        return None

    try:
        # Subscribed before the first change: one it missed would be counted as not seen.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.connected.wait(), patience)
        for order_id in orders:
            payment = {"payment_id": f"stale-{uuid.uuid4().hex}"}
            started = time.perf_counter()
            try:
                whole_bill: dict[str, object] = {
                    "choice": {"way": "rest"},
                    "amount": "1500.00",
                    "currency": "RUB",
                }
                await move(order_id, "start", {**payment, **whole_bill})
                sent = time.perf_counter()
                await move(order_id, "complete", payment)
            except (TimeoutError, OSError, ValueError, IndexError):
                # eda did not make the change: nothing to measure.
                result.polling.failed += 1
                result.push.failed += 1
                continue
            polled, pushed = await asyncio.gather(
                first_shown(order_id, sent), watch.first_shown(order_id, sent, patience)
            )
            result.polling.record(sent, polled)
            result.push.record(sent, pushed)
            await asyncio.sleep(max(0.0, pause - (time.perf_counter() - started)))
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        pos.close()
        eda.close()
    result.stream_drops = watch.drops
    return result


async def fixed_with_staleness(
    job: MixJob, eda_url: str, probe_orders: list[str]
) -> tuple[load.Stream, Probed]:
    """The mix at a fixed rate with the staleness probe running beside it."""
    return await asyncio.gather(
        mix_stream(job),
        probe_staleness(job.base_url, eda_url, probe_orders, seconds=job.seconds * 0.9),
    )


def prefill(database_url: str, count: int) -> None:
    """``count`` waiting orders of rest-1 written straight into eda's orders table, in one
    transaction, and the feed notified: iiko-integration's followers learn each of them,
    as from orders created through the POS API but in seconds, not the half hour the mix
    takes on a shared box to create the 200,000 that fill a worker's memory."""
    import psycopg

    from qrpay.eda.repository import CHANGES_CHANNEL

    run = uuid.uuid4().hex[:8]
    columns = (
        "id, client_id, internal_order_id, status, currency, amount, elements, bill_version, "
        "version, created_at, updated_at, change_tx"
    )
    # One transaction (committed as the block ends): the notification goes out with it.
    with psycopg.connect(database_url.replace("+asyncpg", "")) as db:
        db.execute(
            f"INSERT INTO orders ({columns}) "  # noqa: S608 (the bench's own text)
            "SELECT md5(%(run)s || g), 'rest-1', 'prefill-' || %(run)s || '-' || g, "
            "'WAITING', 'RUB', '1500.00', '[]', 1, 1, now(), now(), "
            "pg_current_xact_id()::text::bigint FROM generate_series(1, %(count)s) AS g",
            {"run": run, "count": count},
        )
        db.execute("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))


def wait_learned(iiko_url: str, since: float, timeout: float = 300.0) -> float:
    """Seconds until every iiko-integration worker has read eda's feed to its end in a read
    started after ``since`` (Unix time): the gauge is the stalest worker's."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError), opener.open(f"{iiko_url}/metrics", timeout=5) as page:
            for line in page.read().decode().splitlines():
                if line.startswith("qrpay_feed_current_as_of_seconds") and (
                    float(line.rsplit(" ", 1)[1]) > since
                ):
                    return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"iiko-integration did not follow the prefill within {timeout:.0f} s")


def rss_text(pids: list[int]) -> str:
    return " ".join(f"{harness.rss_mib(pid):.0f}" for pid in pids)


def soak(
    wrk: Callable[[int], harness.WrkResult], minutes: int, iiko_workers: list[int]
) -> list[harness.WrkResult]:
    """The POS mix at its maximum for ``minutes``, one wrk run a minute back to back (a gap of
    a few milliseconds between them): each minute's figures and each iiko-integration
    worker's RSS printed as it ends, then the first and the last minute side by side.

    Issue 22: over 12 minutes the mix lost a third of its RPS and its p99 went from 172 ms to
    700 ms while each worker's memory of statuses filled; a 20 s run never sees that.
    """
    start_rss = rss_text(iiko_workers)
    print(
        f"soak: {minutes} min of the POS mix; iiko-integration workers' RSS MiB at start "
        f"{start_rss} (pids {' '.join(map(str, iiko_workers))})",
        flush=True,
    )
    print(SOAK_ROW.format("minute", "RPS", "p50 ms", "p99 ms", "errors", "socket", "RSS MiB"))
    minutes_run = []
    for minute in range(1, minutes + 1):
        result = wrk(60)
        minutes_run.append(result)
        print(soak_row(str(minute), result, rss_text(iiko_workers)), flush=True)
    first, last = minutes_run[0], minutes_run[-1]
    print(f"soak, first vs last minute of {minutes}:", flush=True)
    print(soak_row("first", first, start_rss), flush=True)
    print(soak_row("last", last, rss_text(iiko_workers)), flush=True)
    print(
        f"  last/first: RPS {last.rps / first.rps:.2f}, p99 {last.p99_ms / first.p99_ms:.2f}; "
        f"RSS MiB per worker at start {start_rss}, at end {rss_text(iiko_workers)}",
        flush=True,
    )
    return minutes_run


SOAK_ROW = "{:8} {:>8} {:>9} {:>9} {:>7} {:>7}  {}"


def soak_row(label: str, result: harness.WrkResult, rss: str) -> str:
    return SOAK_ROW.format(
        label,
        f"{result.rps:.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        result.errors,
        result.socket_errors,
        rss,
    )


def embedded_mix(
    workdir: Path, orders: int, run: Callable[[str], harness.WrkResult], env: dict[str, str]
) -> tuple[harness.WrkResult, str]:
    """The same mix against `make run`: `qrpay up`, every service in one process on SQLite,
    as a newcomer meets it first. Returns the mix's result and its CPU line."""
    from qrpay.runner.embedded import ports_for

    base = free_port_block(len(ports_for(8080)))
    port = ports_for(base)["iiko-integration"]
    args = [local.QRPAY, "up", "--data-dir", str(workdir / "up"), "--port-base", str(base)]
    up = local.start("qrpay-up", args, port, {}, workdir)
    try:
        local.wait_ready(up, timeout=120)
        ids = asyncio.run(seed_orders(up.url, orders))
        ids_file = workdir / "up-ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        env["QRPAY_BENCH_IDS"] = str(ids_file)
        run(up.url)  # warm-up
        meter = CpuMeter({"qrpay up": up.popen.pid})
        meter.start()
        result = run(up.url)
        return result, cpu_line(meter.spent(), result.requests)
    finally:
        up.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--iiko-workers", type=int, default=2)
    parser.add_argument("--eda-workers", type=int, default=1)
    parser.add_argument(
        "--rates",
        default="350,1500",
        help="fixed rates for the latency runs: the seed's start load and the target",
    )
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--probes", type=int, default=100, help="status changes for staleness")
    parser.add_argument(
        "--short",
        action="store_true",
        help="about a minute: 8 s runs, the target rate only, fewer orders and probes",
    )
    parser.add_argument(
        "--soak-minutes",
        type=int,
        default=0,
        help="instead of the runs above: the mix at its maximum for this many minutes (>= 10 "
        "fills each iiko-integration worker's memory of statuses), minute by minute",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="with --soak-minutes: this many orders written into eda first, so each "
        "iiko-integration worker's memory starts full (200000: feed.max_orders)",
    )
    parser.add_argument(
        "--no-embedded",
        action="store_true",
        help="skip the line of the mix against `make run` (qrpay up, SQLite)",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.seconds, args.rates, args.orders, args.probes = 8, str(TARGET_RATE), 200, 40
    warm_up = 2 if args.short else 3
    local.require_program("wrk")

    wrk_env: dict[str, str] = {"QRPAY_BENCH_KEY": API_KEY}

    def wrk(url: str, seconds: int) -> harness.WrkResult:
        return harness.run_wrk(url, LUA, seconds=seconds, connections=args.connections, env=wrk_env)

    if args.soak_minutes:
        args.probes = 0

    # Each figure is printed as soon as it is measured: a later failure loses none of them.
    print(ROW.format("run", "RPS", "p50 ms", "p99 ms", "errors", "target").rstrip(), flush=True)
    with harness.pos_stand("qrpay_bench") as stand:
        workdir, url = stand.workdir, stand.database_url
        eda = stand.serve("eda", args.eda_workers)
        iiko = stand.serve("iiko-integration", args.iiko_workers)
        meter = CpuMeter(
            {"iiko-integration": iiko.popen.pid, "eda": eda.popen.pid},
            (urlsplit(url).path.lstrip("/"),),
        )
        try:
            local.wait_ready(eda)
            local.wait_ready(iiko)
            ids = asyncio.run(seed_orders(iiko.url, args.orders))
            probe_orders = asyncio.run(seed_orders(iiko.url, args.probes))
            ids_file = workdir / "ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            wrk_env["QRPAY_BENCH_IDS"] = str(ids_file)
            wrk(iiko.url, warm_up)
            if args.soak_minutes:
                workers = harness.worker_pids(iiko.popen.pid)
                if args.prefill:
                    print(f"prefill: RSS MiB before {rss_text(workers)}", flush=True)
                    prefill(url, args.prefill)
                    # A read that starts once the prefill is committed reads all of it.
                    took = wait_learned(iiko.url, time.time())
                    print(
                        f"prefill: {args.prefill} orders written to eda, followed by every "
                        f"worker in {took:.0f} s; RSS MiB {rss_text(workers)}",
                        flush=True,
                    )
                meter.start()
                soaked = soak(partial(wrk, iiko.url), args.soak_minutes, workers)
                print(cpu_line(meter.spent(), sum(m.requests for m in soaked)), flush=True)
                return 0
            meter.start()
            mix = wrk(iiko.url, args.seconds)
            label = f"POS mix, max (wrk, {args.connections} connections)"
            target = f"target >= {TARGET_RPS:.0f}: {verdict(mix.rps >= TARGET_RPS)}"
            print(row(label, mix.rps, mix.p50_ms, mix.p99_ms, mix.errors, target), flush=True)
            print(cpu_line(meter.spent(), mix.requests), flush=True)
            rates = [float(r) for r in args.rates.split(",")]
            for rate in rates:
                job = MixJob(iiko.url, ids, rate, args.seconds)
                meter.start()
                staleness = None
                if rate == rates[-1]:
                    fixed, staleness = uvloop.run(fixed_with_staleness(job, eda.url, probe_orders))
                else:
                    fixed = uvloop.run(mix_stream(job))
                spent = meter.spent()
                p99 = fixed.percentile_ms(0.99)
                print(
                    row(
                        f"POS mix, fixed {rate:.0f} RPS (open loop)",
                        fixed.count / fixed.window,
                        fixed.percentile_ms(0.50),
                        p99,
                        fixed.failures,
                        fixed_target(rate, p99, fixed.failures),
                    ),
                    flush=True,
                )
                print(by_request_line(fixed), flush=True)
                print(cpu_line(spent, fixed.count), flush=True)
                if staleness is not None:
                    how = "POS poll shows it, polling every 10 ms"
                    print(staleness.polling.line(how, TARGET_STALENESS_MS), flush=True)
                    how = "the POS's WebSocket stream delivers it"
                    line = staleness.push.line(how, TARGET_PUSH_STALENESS_MS)
                    if staleness.stream_drops:
                        line += f" (stream dropped {staleness.stream_drops} times, resumed)"
                    print(line, flush=True)
        finally:
            iiko.stop()
            eda.stop()

        embedded = None
        if not args.no_embedded:
            embedded, embedded_cpu = embedded_mix(
                workdir, args.orders, partial(wrk, seconds=args.seconds), wrk_env
            )
            label = f"make run (qrpay up, SQLite), max (wrk, {args.connections})"
            print(
                row(label, embedded.rps, embedded.p50_ms, embedded.p99_ms, embedded.errors),
                flush=True,
            )
            print(embedded_cpu, flush=True)

        with harness.baseline(args.iiko_workers, workdir) as baseline:
            wrk(baseline.url, warm_up)
            bare_meter = CpuMeter({"bare": baseline.popen.pid})
            bare_meter.start()
            bare = wrk(baseline.url, args.seconds)
            bare_spent = bare_meter.spent()
        label = "baseline: bare FastAPI (wrk, same mix)"
        print(row(label, bare.rps, bare.p50_ms, bare.p99_ms, bare.errors), flush=True)
        print(cpu_line(bare_spent, bare.requests), flush=True)

    ratio = mix.rps / bare.rps
    print(
        f"\nPOS mix / baseline: {ratio:.3f} (target >= {TARGET_RATIO}: "
        f"{verdict(ratio >= TARGET_RATIO)}); iiko-integration workers {args.iiko_workers}, "
        f"eda workers {args.eda_workers}, PostgreSQL, all on {os.cpu_count()} cores shared "
        "with the load generator"
    )
    if embedded is not None:
        ratio = embedded.rps / bare.rps
        met = ratio >= TARGET_RATIO and embedded.errors == 0
        print(
            f"make run / baseline: {ratio:.3f}, {embedded.errors} errors (target >= "
            f"{TARGET_RATIO} with 0 errors: {verdict(met)}); every service in one process"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
