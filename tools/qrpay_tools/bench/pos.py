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
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import uvloop

from qrpay_tools.bench import harness, load, wire

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


async def mix_stream(
    base_url: str,
    ids: list[str],
    *,
    rate: float,
    seconds: float,
    timeout: float = 30.0,
    connections: int = 512,
    start_at: float | None = None,
    name: str = "POS mix",
) -> load.Stream:
    """The POS mix in an open loop at ``rate`` per second (see qrpay_tools.bench.load)."""
    stream = load.Stream(name, rate, seconds)
    client = wire.Client(base_url, connections=connections, headers={"X-API-Key": API_KEY})
    mix = Mix(ids)

    async def fire(index: int, due: float) -> None:
        path, body = mix.request(index)
        await load.call(stream, client, "POST", path, since=due, timeout=timeout, body=body)

    try:
        await load.open_loop(stream, fire, start_at=start_at)
    finally:
        client.close()
    return stream


@dataclass
class FixedRateResult:
    rate: float
    sent: int
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    errors: int


async def fixed_rate(base_url: str, ids: list[str], rate: float, seconds: float) -> FixedRateResult:
    """Open loop: request i is due at start + i/rate, whatever happened to the others."""
    stream = await mix_stream(base_url, ids, rate=rate, seconds=seconds)
    return FixedRateResult(
        rate=rate,
        sent=stream.count,
        achieved_rps=stream.count / stream.window,
        p50_ms=stream.percentile_ms(0.50),
        p99_ms=stream.percentile_ms(0.99),
        errors=stream.failures,
    )


@dataclass(frozen=True)
class MixJob:
    """A POS mix stream to run in a process of its own (see ``run_mix_job``)."""

    base_url: str
    ids: list[str]
    rate: float
    seconds: float
    timeout: float
    connections: int
    start_at: float | None = None


def run_mix_job(job: MixJob) -> load.Stream:
    """Entry point of a load-generator process: the POS mix stream, with its own CPU."""
    load.raise_priority()
    began = time.process_time()
    stream = uvloop.run(
        mix_stream(
            job.base_url,
            job.ids,
            rate=job.rate,
            seconds=job.seconds,
            timeout=job.timeout,
            connections=job.connections,
            start_at=job.start_at,
        )
    )
    stream.cpu_seconds = time.process_time() - began
    return stream


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
    args = parser.parse_args(argv)
    harness.ensure_wrk()

    with (
        tempfile.TemporaryDirectory(prefix="qrpay-bench-") as tmp,
        harness.fresh_database("qrpay_bench") as url,
    ):
        workdir = Path(tmp)
        (workdir / "var").mkdir()
        ports = {"eda": harness.free_port(), "iiko-integration": harness.free_port()}
        env = harness.write_config(workdir, ports, {"eda": url})
        subprocess.run(
            [harness.QRPAY, "db", "upgrade", "eda"], env={**os.environ, **env}, check=True
        )
        eda = harness.serve("eda", ports["eda"], args.eda_workers, env, workdir)
        iiko = harness.serve(
            "iiko-integration", ports["iiko-integration"], args.iiko_workers, env, workdir
        )
        base_url = f"http://127.0.0.1:{ports['iiko-integration']}"
        try:
            asyncio.run(harness.wait_ready(eda))
            asyncio.run(harness.wait_ready(iiko))
            ids = asyncio.run(seed_orders(base_url, args.orders))
            ids_file = workdir / "ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            wrk_env = {"QRPAY_BENCH_IDS": str(ids_file), "QRPAY_BENCH_KEY": API_KEY}
            print(f"seeded {len(ids)} orders; warming up ...", flush=True)
            harness.run_wrk(base_url, LUA, seconds=3, connections=args.connections, env=wrk_env)
            print(f"POS mix, max throughput, {args.seconds}s ...", flush=True)
            mix = harness.run_wrk(
                base_url, LUA, seconds=args.seconds, connections=args.connections, env=wrk_env
            )
            fixed_runs = []
            for rate in (float(r) for r in args.rates.split(",")):
                print(f"POS mix at a fixed {rate:.0f} RPS, {args.seconds}s ...", flush=True)
                fixed_runs.append(uvloop.run(fixed_rate(base_url, ids, rate, args.seconds)))
        finally:
            iiko.stop()
            eda.stop()

        port = harness.free_port()
        baseline = harness.start(
            "baseline",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "qrpay_tools.bench.baseline_app:app",
                "--port",
                str(port),
                "--workers",
                str(args.iiko_workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            port,
            env,
            workdir,
        )
        try:
            asyncio.run(harness.wait_ready(baseline))
            print(f"baseline: bare FastAPI JSON endpoint, {args.seconds}s ...", flush=True)
            harness.run_wrk(
                f"http://127.0.0.1:{port}",
                LUA,
                seconds=3,
                connections=args.connections,
                env=wrk_env,
            )
            bare = harness.run_wrk(
                f"http://127.0.0.1:{port}",
                LUA,
                seconds=args.seconds,
                connections=args.connections,
                env=wrk_env,
            )
        finally:
            baseline.stop()

    rows = [
        (
            f"POS mix, max (wrk, {args.connections} connections)",
            mix.rps,
            mix.p50_ms,
            mix.p99_ms,
            mix.errors,
        )
    ]
    rows += [
        (
            f"POS mix, fixed {f.rate:.0f} RPS (open loop)",
            f.achieved_rps,
            f.p50_ms,
            f.p99_ms,
            f.errors,
        )
        for f in fixed_runs
    ]
    rows.append(
        ("baseline: bare FastAPI (wrk, same mix)", bare.rps, bare.p50_ms, bare.p99_ms, bare.errors)
    )
    print(f"\n{'run':46} {'RPS':>8} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for label, rps, p50, p99, errors in rows:
        print(f"{label:46} {rps:8.0f} {p50:9.2f} {p99:9.2f} {errors:7d}")
    print(
        f"\nPOS mix / baseline: {mix.rps / bare.rps:.2f}; iiko-integration workers "
        f"{args.iiko_workers}, eda workers {args.eda_workers}, PostgreSQL, all on "
        f"{os.cpu_count()} cores shared with the load generator"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
