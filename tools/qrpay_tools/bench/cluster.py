"""`make bench-cluster`: the POS mix and payments together, one instance of each service and
then the cluster behind nginx, at a load this machine sustains, at the target and at twice it.

Each step runs on a topology started afresh (new PostgreSQL databases, new processes) so
the backlog of one step (queued payment tasks) never weighs on the next, and is always
torn down, also on Ctrl-C or SIGTERM:

- phase ``single``: one `qrpay serve` of every service (iiko-integration, payments-eda and
  api-proxy on the addresses nginx has in the cluster, so the config files are the same)
  and one `qrpay worker payments-eda`, no nginx;
- phase ``cluster``: `python -m qrpay_tools.cluster up` (what `make cluster` runs: two instances
  of iiko-integration and of payments-eda behind nginx) in its own var directory, on its
  own ports and databases, so a running `make cluster` is not touched.

In each step two load-generator processes start together: the POS mix (95% POST
/orders/list with 1-5 ids, 5% POST /orders) against iiko-integration, and payments
(preorder, pay, status polled as X-Polling-Delay says until PAYED) against payments-eda,
each in an open loop at a fixed rate (qrpay_tools.bench.load: latency from the scheduled start,
so a stall shows). Steps: ``base`` (--rate, --pay-rate: what this machine sustains, so
single and cluster compare), ``pos`` (the POS part of the target with the payments this
machine carries, --carried-pay-rate: is the POS served within the target while payments
take what is left?), ``target`` (--target: the seed's future load) and ``overload``
(--overload times the target: refused fast with 503, or timing out?).

It prints one table (offered and answered rates, p50/p99/max latency, 200 / 503 / other
error / timeout counts, the 503s' p99), the CPU each process used, PostgreSQL connections,
failures by status and code, and a verdict per target. Exit status 0 when every step was
measured and torn down, whether the targets were met or not; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg
import yaml

from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import QrpayConfig, parse_config
from qrpay_tools import local
from qrpay_tools.bench import harness, load, pay, pos
from qrpay_tools.cluster import run
from qrpay_tools.ports import free_port_block, port_is_free

PHASES = ("single", "cluster")
STEPS = ("base", "pos", "target", "overload")
PORT_BLOCK = 30  # Layout: nginx on base..base+2, the instances on base+20 and up
STOP_SECONDS = 5.0
LATE_MS = 10.0  # a generator that starts requests later than this (p99) is noted


@dataclass(frozen=True)
class Load:
    pos_rate: float
    pay_rate: float

    def times(self, factor: float) -> Load:
        return Load(self.pos_rate * factor, self.pay_rate * factor)

    def __str__(self) -> str:
        return f"POS {self.pos_rate:,.0f}/s + payments {self.pay_rate:,.0f}/s"


@dataclass
class StepResult:
    phase: str
    step: str
    rates: Load
    pos: load.Stream
    payments: load.Stream
    requests: load.Stream
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, by process
    connections: tuple[int, int, int] = (0, 0, 0)  # PostgreSQL: peak ours, peak all, max
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent, by stage
    machine_busy: float = 0.0  # cores busy with anything, the bench's processes or not
    stolen: float = 0.0  # cores the hypervisor gave to other machines meanwhile
    error: str = ""  # why the step could not be measured
    leftovers: list[str] = field(default_factory=list)  # what the teardown could not stop

    @property
    def streams(self) -> list[load.Stream]:
        return [self.pos, self.requests, self.payments]

    @property
    def label(self) -> str:
        return f"{self.phase}/{self.step}"


def say(line: str) -> None:
    print(line, flush=True)


# -- topologies ------------------------------------------------------------------------


def single_ports(layout: run.Layout) -> dict[str, int]:
    """One instance per service; the balanced ones and api-proxy where nginx would be."""
    ports = dict(layout.nginx_ports)
    for _, service, port in layout.instances:
        ports.setdefault(service, port)
    return ports


def start_single(layout: run.Layout, db_prefix: str, overrides: list[str]) -> None:
    layout.logs.mkdir(parents=True, exist_ok=True)
    env = run.configure(layout, db_prefix, overrides)
    local.migrate(env)
    ports = single_ports(layout)
    programs = [run.serve_program(service, service, port) for service, port in ports.items()]
    programs.append(run.worker_program())
    run.launch(layout, env, programs)
    run.wait_everything(layout, programs)


def start_cluster(layout: run.Layout, db_prefix: str, overrides: list[str]) -> None:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = run.up(layout, db_prefix, overrides)
    if code != 0:
        raise RuntimeError(f"the cluster did not start:\n{output.getvalue()}")


def teardown(layout: run.Layout, db_prefix: str) -> list[str]:
    """Stops every process of the step and nginx, drops its databases; returns what is left."""
    pids = [int(str(entry["pid"])) for entry in run.read_pids(layout)]
    nginx = run.nginx_pid(layout)
    with contextlib.redirect_stdout(io.StringIO()):
        # SIGKILL after STOP_SECONDS: nothing of a bench run needs a graceful end.
        run.down(layout, quiet=True, patience=STOP_SECONDS)
    leftovers = [f"process {pid} still runs" for pid in pids if run.alive(pid)]
    if nginx is not None and run.alive(nginx):
        leftovers.append(f"nginx {nginx} still runs")
    deadline = time.monotonic() + 5
    while True:
        busy = [
            p for p in range(layout.port_base, layout.port_base + PORT_BLOCK) if not port_is_free(p)
        ]
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    leftovers += [f"port {port} still in use" for port in busy]
    try:
        local.drop_databases(db_prefix)
    except psycopg.Error as exc:
        leftovers.append(f"databases {db_prefix}_* not dropped: {exc}".strip())
    return leftovers


def process_pids(layout: run.Layout) -> dict[str, int]:
    """The processes whose CPU is counted: the services, the worker and nginx."""
    pids = {str(entry["name"]): int(str(entry["pid"])) for entry in run.read_pids(layout)}
    nginx = run.nginx_pid(layout)
    if nginx is not None:
        pids["nginx"] = nginx
    return pids


class PostgresSampler(threading.Thread):
    """While the load runs: peak PostgreSQL connections (the bench's databases and all) and
    the CPU of the server processes serving the bench's databases. Only those: PostgreSQL
    may be shared with other work, and its background processes are not counted."""

    def __init__(self, db_prefix: str) -> None:
        super().__init__(daemon=True)
        self.db_prefix = db_prefix + "_"
        self.ready = threading.Event()
        self.done = threading.Event()
        self.peak_ours = 0
        self.peak_all = 0
        self.limit = 0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def run(self) -> None:
        try:
            with psycopg.connect(local.PG_ADMIN, autocommit=True) as admin:
                row = admin.execute("SHOW max_connections").fetchone()
                self.limit = int(row[0]) if row else 0
                while True:
                    self._sample(admin)
                    self.ready.set()
                    if self.done.wait(0.25):
                        self._sample(admin)
                        return
        except psycopg.Error:
            pass
        finally:
            self.ready.set()

    def _sample(self, admin: psycopg.Connection[tuple[object, ...]]) -> None:
        rows = admin.execute(
            "SELECT pid, left(datname, %s) = %s FROM pg_stat_activity"
            " WHERE backend_type = 'client backend'",
            (len(self.db_prefix), self.db_prefix),
        ).fetchall()
        ours = [int(str(pid)) for pid, mine in rows if mine]
        self.peak_ours = max(self.peak_ours, len(ours))
        self.peak_all = max(self.peak_all, len(rows))
        for pid in ours:
            spent = harness.cpu_seconds(pid)
            # Seen at the first sample: count from there; opened later: all of its CPU.
            self._first.setdefault(pid, spent if not self.ready.is_set() else 0.0)
            self._last[pid] = spent

    def stop(self) -> tuple[tuple[int, int, int], float]:
        """((peak ours, peak all, max_connections), CPU seconds of our server processes)."""
        self.done.set()
        self.join(5)
        cpu = sum(max(0.0, self._last[pid] - first) for pid, first in self._first.items())
        return (self.peak_ours, self.peak_all, self.limit), cpu


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, from /proc/stat: busy is user,
    nice, system, irq and softirq time; stolen is what the hypervisor gave to others."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    fields += [0] * (8 - len(fields))
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, fields[7] / tick


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: harness.cpu_seconds(pid) for name, pid in pids.items()}


# -- one step --------------------------------------------------------------------------


def generate(
    pool: Executor,
    urls: dict[str, str],
    ids: list[str],
    orders: list[pos.Order],
    rates: Load,
    seconds: float,
    args: argparse.Namespace,
) -> tuple[load.Stream, load.Stream, load.Stream]:
    """Both streams at once, each in its own process, started at the same instant."""
    start_at = time.time() + 0.5
    mix = pool.submit(
        pos.run_mix_job,
        pos.MixJob(
            urls["pos"], ids, rates.pos_rate, seconds, args.timeout, args.connections, start_at
        ),
    )
    payments = pool.submit(
        pay.run_payment_job,
        pay.PaymentJob(
            urls["pay"],
            orders,
            args.user,
            args.card,
            rates.pay_rate,
            seconds,
            args.timeout,
            args.payment_deadline,
            args.pay_connections,
            start_at,
        ),
    )
    paid, requests = payments.result()
    return mix.result(), paid, requests


def run_step(
    pool: Executor,
    phase: str,
    step: str,
    rates: Load,
    warm: Load,
    layout: run.Layout,
    args: argparse.Namespace,
) -> StepResult:
    """One step on a topology of its own, always torn down; a failure is kept, not raised."""
    db_prefix = f"{args.db_prefix}_{phase}_{step}"
    result = StepResult(
        phase,
        step,
        rates,
        load.Stream("POS mix", rates.pos_rate, args.seconds),
        load.Stream("payments (to PAYED)", rates.pay_rate, args.seconds),
        load.Stream("payment API requests", 0.0, args.seconds),
    )
    mark = time.monotonic()

    def stage(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        result.timings[name] = now - mark
        mark = now

    try:
        # What a killed run of the bench left in this var directory goes first: processes,
        # nginx and the databases it named there.
        marker = layout.var / "db-prefix"
        if run.read_pids(layout) or run.nginx_pid(layout) is not None or marker.exists():
            stale = marker.read_text().strip() if marker.exists() else db_prefix
            teardown(layout, stale or db_prefix)
        layout.var.mkdir(parents=True, exist_ok=True)
        marker.write_text(db_prefix + "\n")
        (start_single if phase == "single" else start_cluster)(layout, db_prefix, args.overrides)
        stage("start")
        urls = {
            "pos": layout.url(layout.nginx_ports["iiko-integration"]),
            "pay": layout.url(layout.nginx_ports["payments-eda"]),
        }
        warm_payments = int(warm.pay_rate * args.warmup)
        needed = warm_payments + int(rates.pay_rate * args.seconds)

        async def prepare() -> tuple[list[str], list[pos.Order]]:
            seeded = await pos.create_orders(urls["pos"], args.orders)
            return [o.order_id for o in seeded], await pos.create_orders(urls["pos"], needed)

        ids, orders = asyncio.run(prepare())
        stage("orders")
        if args.warmup > 0:
            generate(pool, urls, ids, orders[:warm_payments], warm, args.warmup, args)
        stage("warm-up")
        pids = process_pids(layout)
        sampler = PostgresSampler(db_prefix)
        sampler.start()
        sampler.ready.wait(10)
        before = cpu_snapshot(pids)
        machine_before = machine_cpu_seconds()
        began = time.perf_counter()
        result.pos, result.payments, result.requests = generate(
            pool, urls, ids, orders[warm_payments:], rates, args.seconds, args
        )
        elapsed = time.perf_counter() - began
        after = cpu_snapshot(pids)
        machine_after = machine_cpu_seconds()
        result.machine_busy, result.stolen = (
            (end - start) / elapsed
            for end, start in zip(machine_after, machine_before, strict=True)
        )
        result.connections, postgres_cpu = sampler.stop()
        stage("load")
        result.cpu = {name: max(0.0, after[name] - before[name]) / elapsed for name in before}
        result.cpu["postgresql"] = postgres_cpu / elapsed
        spent = result.pos.cpu_seconds + result.payments.cpu_seconds
        result.cpu["load generator"] = spent / elapsed
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        result.error = f"{type(exc).__name__}: {lines[-1] if lines else ''} (logs: {layout.logs})"
    finally:
        result.leftovers = teardown(layout, db_prefix)
        if not result.leftovers:
            (layout.var / "db-prefix").unlink(missing_ok=True)
        stage("stop")
    return result


# -- report ----------------------------------------------------------------------------


def ms(value: float) -> str:
    return "-" if value != value else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


HEADER = (
    f"{'phase':8} {'step':9} {'stream':9} {'offered/s':>9} {'ok/s':>8} {'p50 ms':>8} "
    f"{'p99 ms':>8} {'max ms':>8} {'ok':>7} {'503':>6} {'error':>6} {'timeout':>7} "
    f"{'503 p99':>8}"
)
SHORT = {"POS mix": "POS", "payment API requests": "pay API", "payments (to PAYED)": "payments"}


def rows(result: StepResult) -> list[str]:
    if result.error:
        return [f"{result.phase:8} {result.step:9} not measured: {result.error}"]
    lines = []
    for stream in result.streams:
        offered = f"{stream.rate:,.0f}" if stream.rate else "-"
        lines.append(
            f"{result.phase:8} {result.step:9} {SHORT.get(stream.name, stream.name):9} "
            f"{offered:>9} {stream.ok_rate:8,.1f} {ms(stream.percentile_ms(0.5)):>8} "
            f"{ms(stream.percentile_ms(0.99)):>8} {ms(stream.max_ms):>8} "
            f"{stream.outcomes[load.OK]:7d} {stream.outcomes[load.REFUSED]:6d} "
            f"{stream.outcomes[load.ERROR]:6d} {stream.outcomes[load.TIMEOUT]:7d} "
            f"{ms(stream.refusal_ms(0.99)):>8}"
        )
    return lines


def cpu_line(result: StepResult) -> str:
    if result.error:
        return f"  {result.label}: not measured"
    merged: dict[str, float] = {}
    for name, cores in result.cpu.items():
        # iiko-integration-1 and -2 (the cluster's instances) count as one service.
        base = name.rsplit("-", 1)[0] if name[-2:] in ("-1", "-2") else name
        merged[base] = merged.get(base, 0.0) + cores
    parts = ", ".join(
        f"{name} {cores:.2f}" for name, cores in sorted(merged.items(), key=lambda kv: -kv[1])
    )
    ours = sum(merged.values())
    other = max(0.0, result.machine_busy - ours)
    return f"  {result.label}: {parts}; total {ours:.2f}, the rest of the machine {other:.2f}" + (
        f", stolen by the host {result.stolen:.2f}" if result.stolen >= 0.05 else ""
    )


def lag_note(result: StepResult) -> str | None:
    late = [
        f"{SHORT.get(stream.name, stream.name)} p99 {stream.lag_ms(0.99):,.0f} ms "
        f"(max {max(stream.lags) * 1000:,.0f})"
        for stream in (result.pos, result.payments)
        if stream.lags and stream.lag_ms(0.99) > LATE_MS
    ]
    return f"  {result.label}: {', '.join(late)}" if late else None


def target_verdict(result: StepResult, p99_ms: float) -> str:
    if result.error:
        return f"{result.phase} {result.step} ({result.rates}): NOT MEASURED: {result.error}"
    failures = sum(s.failures for s in (result.pos, result.requests, result.payments))
    pos_p99 = result.pos.percentile_ms(0.99)
    api_p99 = result.requests.percentile_ms(0.99)
    met = failures == 0 and pos_p99 <= p99_ms and api_p99 <= p99_ms
    outcomes = request_outcomes(result)
    return (
        f"{result.phase} {result.step} ({result.rates}, p99 <= {p99_ms:.0f} ms, no errors): "
        f"{'MET' if met else 'NOT MET'}: POS {result.pos.ok_rate:,.0f}/s p99 {ms(pos_p99)} ms; "
        f"payments {result.payments.ok_rate:,.1f}/s paid, their requests p99 {ms(api_p99)} ms; "
        f"requests refused {outcomes[load.REFUSED]}, failed {outcomes[load.ERROR]}, "
        f"timed out {outcomes[load.TIMEOUT]}; payments not paid {result.payments.failures}"
    )


def pos_verdict(result: StepResult, p99_ms: float) -> str:
    """The POS part of the target: judged on the POS stream; the payments beside it are
    reported, not judged (they are what the machine carries, not the target's 100/s)."""
    if result.error:
        return f"{result.phase} {result.step} ({result.rates}): NOT MEASURED: {result.error}"
    pos_p99 = result.pos.percentile_ms(0.99)
    met = result.pos.failures == 0 and pos_p99 <= p99_ms
    paid = result.payments.outcomes
    return (
        f"{result.phase} {result.step} ({result.rates}: POS p99 <= {p99_ms:.0f} ms, no POS "
        f"errors): {'MET' if met else 'NOT MET'}: POS {result.pos.ok_rate:,.0f}/s p99 "
        f"{ms(pos_p99)} ms, {result.pos.failures} not answered 200; beside it payments "
        f"{result.payments.ok_rate:,.1f}/s paid (p99 {ms(result.payments.percentile_ms(0.99))} "
        f"ms), {paid[load.REFUSED]} refused, {paid[load.TIMEOUT]} not paid in time, "
        f"{paid[load.ERROR]} failed"
    )


def request_outcomes(result: StepResult) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for stream in (result.pos, result.requests):
        outcomes.update(stream.outcomes)
    return outcomes


def overload_verdict(result: StepResult, fast_ms: float) -> str:
    if result.error:
        return f"{result.phase} {result.step} ({result.rates}): NOT MEASURED: {result.error}"
    outcomes = request_outcomes(result)
    refusals = sorted(result.pos.refusals + result.requests.refusals)
    refusal_p99 = harness.percentile(refusals, 0.99) * 1000
    fast = not refusals or refusal_p99 <= fast_ms
    met = outcomes[load.TIMEOUT] == 0 and outcomes[load.ERROR] == 0 and fast
    paid = result.payments.outcomes
    return (
        f"{result.phase} {result.step} ({result.rates}: fast refusals, no timeouts): "
        f"{'MET' if met else 'NOT MET'}: requests {outcomes[load.REFUSED]} refused with 503 "
        f"(p99 {ms(refusal_p99)} ms; fast: <= {fast_ms:.0f} ms), {outcomes[load.TIMEOUT]} timed "
        f"out, {outcomes[load.ERROR]} other errors, {outcomes[load.OK]} answered; payments "
        f"{paid[load.OK]} paid, {paid[load.REFUSED]} refused, {paid[load.TIMEOUT]} not paid "
        f"in time, {paid[load.ERROR]} failed"
    )


def report(results: list[StepResult], args: argparse.Namespace, config: QrpayConfig) -> None:
    say("")
    say(HEADER)
    for result in results:
        for line in rows(result):
            say(line)
    say(
        f"\nok/s: answers 200 (payments: PAYED) per second of the {args.seconds:.0f} s the load was "
        "offered; latency from each one's "
        "scheduled start (open loop);\n503: refused (by the service or a dependency's bulkhead; "
        "503 p99: their latency); "
        f"timeout: no answer in {args.timeout:.0f} s (a payment: not PAYED in "
        f"{args.payment_deadline:.0f} s)"
    )
    say("\nPOS mix by route (creations wait on eda; polls are answered from memory):")
    for result in results:
        if not result.error:
            say(f"  {result.label}: {pos.by_request_line(result.pos).strip()}")
    say(
        f"\nCPU, cores used while the load ran, of {os.cpu_count()} (postgresql: the server "
        "processes of the bench's databases; the rest of the machine: everything else running):"
    )
    for result in results:
        say(cpu_line(result))
    say("\nPostgreSQL connections, peak while the load ran (the bench's / all / max_connections):")
    for result in results:
        if not result.error:
            ours, every, limit = result.connections
            say(f"  {result.label}: {ours} / {every} / {limit}")
    failed = [
        f"  {r.label} {SHORT.get(s.name, s.name)}: "
        + ", ".join(f"{kind} x{n}" for kind, n in s.kinds.most_common())
        for r in results
        for s in (r.pos, r.requests)
        if s.kinds
    ]
    if failed:
        say("\nRequests not answered 200, by status and error code:")
        for line in failed:
            say(line)
    notes = [note for note in map(lag_note, results) if note]
    if notes:
        say(
            "\nThe load generator started requests late (the latencies include it: they are "
            "measured from the schedule):"
        )
        for note in notes:
            say(note)
    # A dependency's bulkhead (callers waiting on it per process), where the config has one.
    bulkheads = sorted(
        {int(getattr(dependency, "max_in_flight", 0)) for dependency in config.services.values()}
        - {0}
    )
    bulkhead = (
        f"calls waiting on one dependency at most {'/'.join(map(str, bulkheads))} per process, "
    )
    say(
        f"\nconfig: nginx admits {args.admission} requests at once per balanced service, "
        f"http.max_in_flight {config.http.max_in_flight} per instance, "
        + (bulkhead if bulkheads else "")
        + "status polled "
        f"every {config.payments.polling_delay_seconds} s (X-Polling-Delay), worker "
        f"concurrency {run.WORKER_CONCURRENCY}"
        + (f", --set {' '.join(args.overrides)}" if args.overrides else "")
        + f"; {args.seconds:.0f} s per step after {args.warmup:.0f} s of warm-up; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    judges = {
        "pos": lambda r: pos_verdict(r, args.p99_ms),
        "target": lambda r: target_verdict(r, args.p99_ms),
        "overload": lambda r: overload_verdict(r, args.fast_refusal_ms),
    }
    verdicts = [judges[r.step](r) for r in results if r.step in judges]
    if verdicts:
        say("\nVerdict:")
        for verdict in verdicts:
            say(f"  {verdict}")


# -- main ------------------------------------------------------------------------------


def parse_load(text: str) -> Load:
    pos_rate, _, pay_rate = text.partition(",")
    return Load(float(pos_rate), float(pay_rate or 0))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m qrpay_tools.bench.cluster",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=300, help="base step: POS requests/s")
    parser.add_argument("--pay-rate", type=float, default=3, help="base step: payments/s")
    parser.add_argument(
        "--target",
        type=parse_load,
        default=Load(1500, 100),
        metavar="POS,PAY",
        help="target step: POS requests/s and payments/s",
    )
    parser.add_argument(
        "--carried-pay-rate",
        type=float,
        default=10,
        help="pos step: payments/s beside the target's POS rate; well under what `make "
        "bench-pay` measures this machine paying at most (about 50/s on an idle box, "
        "2026-12-01), so that the payments are carried with room to spare",
    )
    parser.add_argument(
        "--overload", type=float, default=2.0, help="overload step: this times the target"
    )
    parser.add_argument("--steps", default=",".join(STEPS), help="of: " + ", ".join(STEPS))
    parser.add_argument("--phases", default=",".join(PHASES), help="of: " + ", ".join(PHASES))
    parser.add_argument("--seconds", type=float, default=10, help="of load per step")
    parser.add_argument("--warmup", type=float, default=2, help="seconds at the base load first")
    parser.add_argument("--orders", type=int, default=500, help="orders the POS mix polls")
    parser.add_argument("--timeout", type=float, default=5, help="client timeout of a request")
    parser.add_argument(
        "--payment-deadline", type=float, default=10, help="seconds a payment may take to PAYED"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=512,
        help="POS client connections at most: many clients, more than an instance's "
        "http.max_in_flight, so that load shedding can show",
    )
    parser.add_argument(
        "--pay-connections", type=int, default=256, help="payment client connections"
    )
    parser.add_argument("--p99-ms", type=float, default=100, help="the target's p99")
    parser.add_argument(
        "--fast-refusal-ms", type=float, default=100, help="a 503 slower than this is not fast"
    )
    run.add_config_options(parser, admission="cluster: ", overrides="both topologies: ")
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=Path("var/bench-cluster"),
        help="each step's config and logs stay in <var-dir>/<phase>-<step>",
    )
    parser.add_argument(
        "--port-base", type=int, default=0, help=f"{PORT_BLOCK} ports from here; 0: any free"
    )
    parser.add_argument(
        "--db-prefix",
        default="qrpay_bench_cluster",
        help="databases are <prefix>_<phase>_<step>_<service>, dropped after each step",
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="about two minutes: the cluster at the pos step and the target only, 5 s, 200 orders "
        "(overrides --phases, --steps, --seconds, --warmup and --orders)",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.phases, args.steps, args.seconds, args.warmup, args.orders = (
            "cluster",
            "pos,target",
            5.0,
            1.0,
            200,
        )
    args.step_list = [s.strip() for s in args.steps.split(",") if s.strip()]
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    for value, allowed in ((args.step_list, STEPS), (args.phase_list, PHASES)):
        wrong = sorted(set(value) - set(allowed))
        if wrong or not value:
            parser.error(f"{', '.join(wrong) or 'nothing'}: choose from {', '.join(allowed)}")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    # The config both topologies run with: the development one and the --set changes.
    try:
        written = yaml.safe_load((REPO_DEV_CONFIG / "config.yaml").read_text())
        written.setdefault("http", {})  # as local.write_config has it
        run.apply_overrides(written, args.overrides)
    except run.BadOverride as exc:
        say(f"bench-cluster: {exc}")
        return 2
    config = parse_config(written)
    args.user = config.demo.user_id
    args.card = next(card.id for card in config.demo.cards if card.token.startswith("sandbox-ok"))
    if "cluster" in args.phase_list:
        local.require_program("nginx")
    base = Load(args.rate, args.pay_rate)
    loads = {
        "base": base,
        "pos": Load(args.target.pos_rate, args.carried_pay_rate),
        "target": args.target,
        "overload": args.target.times(args.overload),
    }
    port_base = args.port_base or free_port_block(PORT_BLOCK)
    args.db_prefix = f"{args.db_prefix}_{uuid.uuid4().hex[:6]}"
    say(
        f"bench-cluster: {', '.join(args.phase_list)} x {', '.join(args.step_list)}; "
        + "; ".join(f"{step} {loads[step]}" for step in args.step_list)
        + f"; {args.seconds:.0f} s each; var {args.var_dir}, ports {port_base}+, databases "
        f"{args.db_prefix}_*; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    results: list[StepResult] = []
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            # Both generator processes up (spawned, imported) before any schedule starts.
            list(pool.map(load.preload, ("qrpay_tools.bench.pay", "qrpay_tools.bench.pay")))
            for phase in args.phase_list:
                for step in args.step_list:
                    layout = run.Layout(args.var_dir / f"{phase}-{step}", port_base, args.admission)
                    say(f"{phase} / {step}: {loads[step]}, {args.seconds:.0f} s ...")
                    began = time.monotonic()
                    result = run_step(
                        pool, phase, step, loads[step], min_load(base, loads[step]), layout, args
                    )
                    results.append(result)
                    took = ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items())
                    if result.error:
                        say(f"  not measured: {result.error}")
                    else:
                        pos_p99 = result.pos.percentile_ms(0.99)
                        beside = ""
                        if step in ("pos", "target"):
                            met = pos_p99 <= args.p99_ms and not result.pos.failures
                            beside = (
                                f" (target: p99 <= {args.p99_ms:.0f} ms, no errors: "
                                f"{'met' if met else 'MISSED'})"
                            )
                        say(
                            f"  POS {result.pos.ok_rate:,.0f}/s p99 {ms(pos_p99)} ms{beside}, "
                            f"payments {result.payments.ok_rate:,.1f}/s paid"
                        )
                    say(f"  step took {time.monotonic() - began:.0f} s ({took})")
                    for leftover in result.leftovers:
                        say(f"  teardown: {leftover}")
    except KeyboardInterrupt:
        say("bench-cluster: interrupted; what the current step started is stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(results, args, config)
    leftovers = [f"{r.label}: {item}" for r in results for item in r.leftovers]
    if leftovers:
        say("\nteardown left behind: " + "; ".join(leftovers))
    else:
        say(
            f"\ntorn down: every process of the bench stopped, its ports free, databases "
            f"{args.db_prefix}_* dropped"
        )
    return 1 if leftovers or any(r.error for r in results) else 0


def min_load(one: Load, other: Load) -> Load:
    return Load(min(one.pos_rate, other.pos_rate), min(one.pay_rate, other.pay_rate))


if __name__ == "__main__":
    sys.exit(main())
