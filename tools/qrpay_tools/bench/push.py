"""`make bench-push`: N POS connected to iiko-integration's WebSocket stream while status
changes are driven through eda on PostgreSQL.

``--connections`` POS subscribe to ``GET /orders/stream``: ``--observers`` of them to the
restaurant whose orders change (rest-1), the rest to another (rest-2), as most POS of a
large fleet hear of no change most of the time. ``--rate`` changes a second start
payments of rest-1's orders straight on eda. Delivery latency runs from the start of
eda's request (so it includes the write itself, an upper bound of "from the commit") to
the moment an observer reads the change. Each figure is printed as soon as it is known.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import time
from pathlib import Path

import aiohttp
import yaml

from qrpay.kernel.tickets import TICKET_HEADER
from qrpay_tools import local
from qrpay_tools.bench import harness
from qrpay_tools.bench.pos import API_KEY, bill
from qrpay_tools.identity import stand_in_headers, stand_in_ticket
from qrpay_tools.pos_sim.push import stream_messages, stream_url


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (workers), in MiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Pos:
    """The load generator's POS connections and what the observers received."""

    def __init__(self, url: str, connections: int, changes: int) -> None:
        self.url = stream_url(url)
        self.connected = 0
        self.dropped = 0
        self.received: dict[str, float] = {}
        self._connections = connections
        self._changes = changes
        # Every connection is up or refused; every change reached an observer.
        self.settled = asyncio.Event()
        self.all_received = asyncio.Event()

    def _count(self, connected: int = 0, dropped: int = 0) -> None:
        self.connected += connected
        self.dropped += dropped
        if self.connected + self.dropped >= self._connections:
            self.settled.set()

    async def hold(self, session: aiohttp.ClientSession, client_id: str, observe: bool) -> None:
        headers = {"X-API-Key": API_KEY}
        try:
            async with session.ws_connect(
                self.url, headers=headers, params={"client_id": client_id}
            ) as ws:
                self._count(connected=1)
                async for data in stream_messages(ws):
                    if observe and data["type"] == "change":
                        self.received.setdefault(data["id"], time.monotonic())
                        if len(self.received) >= self._changes:
                            self.all_received.set()
        except (aiohttp.ClientError, OSError):
            pass
        self._count(dropped=1)


async def create_orders(eda: str, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session:

        async def create(index: int) -> str:
            body = {"client_id": "rest-1", "internal_order_id": f"push-{index}", "bill": bill()}
            async with session.post(
                f"{eda}/v1/orders", json=body, headers=stand_in_headers("iiko-integration", "eda")
            ) as answer:
                answer.raise_for_status()
                return str((await answer.json())["order"]["order_id"])

        ids: list[str] = []
        for start in range(0, count, 50):
            ids += await asyncio.gather(*(create(i) for i in range(start, min(count, start + 50))))
        return ids


async def drive(args: argparse.Namespace, iiko: local.Process, eda: local.Process) -> int:
    changes = int(args.rate * args.seconds)
    pos = Pos(iiko.url, args.connections, changes)
    order_ids = await create_orders(eda.url, changes)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        holders = []
        for index in range(args.connections):
            observe = index < args.observers
            holders.append(
                asyncio.create_task(pos.hold(session, "rest-1" if observe else "rest-2", observe))
            )
            if index % 200 == 199:
                await asyncio.sleep(0)  # let the handshakes run
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pos.settled.wait(), 120)
        print(
            f"connected: {pos.connected} of {args.connections} ({pos.dropped} refused or dropped)",
            flush=True,
        )
        # The connections live to the end: out of this process's collections, whose full
        # passes over 10,000 of them stalled the observers for seconds (counted as latency).
        gc.collect()
        gc.freeze()
        print(
            f"RSS after connecting: iiko-integration {rss_mb(iiko.popen.pid):.0f} MiB, "
            f"eda {rss_mb(eda.popen.pid):.0f} MiB",
            flush=True,
        )

        cpu_before = {p.name: harness.cpu_seconds(p.popen.pid) for p in (iiko, eda)}
        started: dict[str, float] = {}
        answered: dict[str, float] = {}
        failed: list[str] = []
        payer = stand_in_ticket("payments-eda", "eda")  # eda's payment moves are payments-eda's

        async def change(order_id: str) -> None:
            started[order_id] = time.monotonic()
            body = {
                "payment_id": f"pay-{order_id}",
                "choice": {"way": "rest"},
                "amount": "1500.00",
                "currency": "RUB",
            }
            try:
                async with session.post(
                    f"{eda.url}/v1/orders/{order_id}/payments/start",
                    json=body,
                    headers={TICKET_HEADER: payer()},
                ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failed.append(str(answer.status))
            except aiohttp.ClientError as error:
                # A reused connection eda had closed: counted (its change is not delivered).
                failed.append(type(error).__name__)
            answered[order_id] = time.monotonic()

        begin = time.monotonic()
        writes = []
        for index, order_id in enumerate(order_ids):
            due = begin + index / args.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writes.append(asyncio.create_task(change(order_id)))
        await asyncio.gather(*writes)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pos.all_received.wait(), 10)
        cpu = {p.name: harness.cpu_seconds(p.popen.pid) - cpu_before[p.name] for p in (iiko, eda)}
        latencies = sorted(
            (pos.received[o] - started[o]) * 1000 for o in order_ids if o in pos.received
        )
        delivered = len(latencies)
        writes_ms = sorted((answered[o] - started[o]) * 1000 for o in answered)
        print(
            f"eda's answer to the write: p50 {harness.percentile(writes_ms, 0.5):.1f} ms, "
            f"p99 {harness.percentile(writes_ms, 0.99):.1f} ms",
            flush=True,
        )
        after_answer = sorted(
            (pos.received[o] - answered[o]) * 1000 for o in order_ids if o in pos.received
        )
        if failed:
            print(f"failed writes: {len(failed)}, e.g. {sorted(set(failed))[:3]}", flush=True)
        print(
            f"changes: {len(order_ids)} at {args.rate:.0f}/s, delivered to the observers: "
            f"{delivered}; still connected {pos.connected - pos.dropped}",
            flush=True,
        )
        # The commit is between eda's request and its answer: the two bound the latency.
        print(
            f"delivery latency from eda's request: p50 {harness.percentile(latencies, 0.5):.1f}"
            f" ms, p99 {harness.percentile(latencies, 0.99):.1f} ms (target p99 <= 1000 ms); "
            f"from eda's answer: p50 {harness.percentile(after_answer, 0.5):.1f} ms, "
            f"p99 {harness.percentile(after_answer, 0.99):.1f} ms",
            flush=True,
        )
        per_change = {name: seconds * 1000 / max(1, delivered) for name, seconds in cpu.items()}
        print(
            "CPU per delivered change: "
            + ", ".join(f"{name} {ms:.2f} ms" for name, ms in per_change.items()),
            flush=True,
        )
        print(
            f"RSS at the end: iiko-integration {rss_mb(iiko.popen.pid):.0f} MiB, "
            f"eda {rss_mb(eda.popen.pid):.0f} MiB, load generator "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (peak)",
            flush=True,
        )
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    return 0 if delivered == len(order_ids) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--observers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="status changes a second")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args(argv)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"open files limit: {soft} (each connection takes one here and one in the server)")
    with harness.pos_stand("qrpay_bench_push") as stand:
        workdir = stand.workdir
        # Every simulated POS uses the one demo key: the stream caps let them all in.
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        config["push"] = {
            **config.get("push", {}),
            "max_streams_per_key": args.connections,
            "max_streams": args.connections,
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
        eda = stand.serve("eda", 1)
        iiko = stand.serve("iiko-integration", 1)
        try:
            local.wait_ready(eda)
            local.wait_ready(iiko)
            code = asyncio.run(drive(args, iiko, eda))
        finally:
            iiko.stop()
            eda.stop()
    print(
        f"one iiko-integration process, one eda process, PostgreSQL; {os.cpu_count()} cores "
        "shared with the load generator"
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
