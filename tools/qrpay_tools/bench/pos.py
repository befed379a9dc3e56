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
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import uvloop

from qrpay_tools import local
from qrpay_tools.bench import harness, load, wire
from qrpay_tools.ports import free_port

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
        await load.call(stream, client, "POST", path, since=due, timeout=job.timeout, body=body)

    try:
        await load.open_loop(stream, fire, start_at=job.start_at)
    finally:
        client.close()
    return stream


def run_mix_job(job: MixJob) -> load.Stream:
    """Entry point of a load-generator process: the POS mix stream, with its own CPU."""
    stream, cpu = load.run_in_process(mix_stream(job))
    stream.cpu_seconds = cpu
    return stream


ROW = "{:46} {:>8} {:>9} {:>9} {:>7}"


def row(label: str, rps: float, p50: float, p99: float, errors: int) -> str:
    return ROW.format(label, f"{rps:.0f}", f"{p50:.2f}", f"{p99:.2f}", errors)


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
    local.require_program("wrk")

    wrk_env: dict[str, str] = {"QRPAY_BENCH_KEY": API_KEY}

    def wrk(url: str, seconds: int) -> harness.WrkResult:
        return harness.run_wrk(url, LUA, seconds=seconds, connections=args.connections, env=wrk_env)

    # Each figure is printed as soon as it is measured: a later failure loses none of them.
    print(ROW.format("run", "RPS", "p50 ms", "p99 ms", "errors"), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="qrpay-bench-") as tmp,
        local.fresh_database("qrpay_bench") as url,
    ):
        workdir = Path(tmp)
        (workdir / "var").mkdir()
        ports = {"eda": free_port(), "iiko-integration": free_port()}
        env = local.write_config(workdir, ports, {"eda": url})
        local.migrate(env, "eda")
        eda = local.serve("eda", ports["eda"], args.eda_workers, env, workdir)
        iiko = local.serve(
            "iiko-integration", ports["iiko-integration"], args.iiko_workers, env, workdir
        )
        try:
            local.wait_ready(eda)
            local.wait_ready(iiko)
            ids = asyncio.run(seed_orders(iiko.url, args.orders))
            ids_file = workdir / "ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            wrk_env["QRPAY_BENCH_IDS"] = str(ids_file)
            wrk(iiko.url, 3)  # warm-up
            mix = wrk(iiko.url, args.seconds)
            label = f"POS mix, max (wrk, {args.connections} connections)"
            print(row(label, mix.rps, mix.p50_ms, mix.p99_ms, mix.errors), flush=True)
            for rate in (float(r) for r in args.rates.split(",")):
                fixed = uvloop.run(mix_stream(MixJob(iiko.url, ids, rate, args.seconds)))
                print(
                    row(
                        f"POS mix, fixed {rate:.0f} RPS (open loop)",
                        fixed.count / fixed.window,
                        fixed.percentile_ms(0.50),
                        fixed.percentile_ms(0.99),
                        fixed.failures,
                    ),
                    flush=True,
                )
        finally:
            iiko.stop()
            eda.stop()

        with harness.baseline(args.iiko_workers, workdir) as baseline:
            wrk(baseline.url, 3)  # warm-up
            bare = wrk(baseline.url, args.seconds)
        label = "baseline: bare FastAPI (wrk, same mix)"
        print(row(label, bare.rps, bare.p50_ms, bare.p99_ms, bare.errors), flush=True)

    print(
        f"\nPOS mix / baseline: {mix.rps / bare.rps:.2f}; iiko-integration workers "
        f"{args.iiko_workers}, eda workers {args.eda_workers}, PostgreSQL, all on "
        f"{os.cpu_count()} cores shared with the load generator"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
