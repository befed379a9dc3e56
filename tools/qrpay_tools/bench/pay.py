"""`make bench-pay`: complete payments through the payer side on PostgreSQL.

Starts eda, cardstorage, cashback, transactions, payments-eda and iiko-integration
with `qrpay serve` on fresh PostgreSQL databases and a fresh durable queue (sandbox
gateway latency 0), one `qrpay worker payments-eda`, binds a card, creates N orders
through the POS API, then runs N complete payments (preorder, pay, poll the status
until PAYED) with bounded concurrency. Reports payments per second and p50/p99 from
the pay request to the PAYED answer, beside a baseline measured in the same run: the
same client loop (three requests per "payment") against a bare FastAPI endpoint.

With ``--split`` it then splits bills (issue 12) in the same run, on the same services:
four guests per order pay a share each as the payer page does (quote, pay, poll the
share's status until PAYED): two equal shares of four and an item at once, then the rest
with a 10% tip. It reports orders and shares per second, p50/p99 per share (from its pay
request to its PAYED answer) and per order, and the CPU per share and per order by process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import uvloop
import yaml
from prometheus_client.parser import text_string_to_metric_families

from qrpay.kernel.tickets import TOOLS_IDENTITY
from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER
from qrpay_tools import local
from qrpay_tools.bench import harness, load, pos, wire
from qrpay_tools.identity import stand_in_ticket, tools_headers
from qrpay_tools.ports import free_port

USER = "bench-user"
CARD = "bench-card"
SERVICES = ("eda", "cardstorage", "cashback", "transactions", "payments-eda", "iiko-integration")
DATABASES = ("eda", "cardstorage", "cashback", "transactions")


@dataclass
class Run:
    label: str
    payments: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.payments / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = harness.percentile(ordered, 0.50) * 1000
        p99 = harness.percentile(ordered, 0.99) * 1000
        return (
            f"{self.label:52} {self.rate:9.1f} {p50:9.1f} {p99:9.1f} "
            f"{self.payments:6d} {self.errors:6d}"
        )


def configure(
    workdir: Path,
    ports: dict[str, int],
    databases: dict[str, str],
    queue: str,
    polling_delay: float,
) -> dict[str, str]:
    env = local.write_config(workdir, ports, databases)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["transactions"]["gateway"] = {"kind": "sandbox", "latency_ms": 0}
    # The app polls as X-Polling-Delay says; the delay bounds how early PAYED can be seen.
    config["payments"]["polling_delay_seconds"] = str(polling_delay)
    for service in config["services"].values():
        service["timeout_ms"] = 5000
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    secdist = yaml.safe_load((workdir / "secdist.yaml").read_text())
    secdist["queue_database"] = queue
    (workdir / "secdist.yaml").write_text(yaml.safe_dump(secdist))
    return env


async def timed_gather(client: wire.Client, calls: Iterable[Awaitable[None]]) -> float:
    """The seconds ``calls`` take, run at once; ``client`` is closed after them either way."""
    began = time.perf_counter()
    try:
        await asyncio.gather(*calls)
    finally:
        client.close()
    return time.perf_counter() - began


async def bind_card(session: aiohttp.ClientSession, cardstorage: str) -> None:
    body = {
        "user_id": USER,
        "token": "sandbox-ok-4242",
        "last4": "4242",
        "expiry_month": 12,
        "expiry_year": 2030,
    }
    url = f"{cardstorage}/v1/payment-methods/{CARD}"
    async with session.put(url, json=body, headers=tools_headers("cardstorage")) as answer:
        answer.raise_for_status()


async def pay_order(
    client: wire.Client,
    order: pos.Order,
    *,
    card: str,
    since: float,
    deadline: float,
    poll_interval: float,
    timeout: float,
    requests: load.Stream | None = None,
    wait_ms: int = 0,
) -> tuple[str, float]:
    """One payment as the app makes it: preorder, pay, then the status until PAYED
    (``follow_status``: long-polls of ``wait_ms``, or polls; a 503 or a lost poll is asked
    again).

    Returns the outcome (qrpay_tools.bench.load: ok once PAYED; timeout past ``deadline``, a
    perf_counter instant) and when the pay request was sent. Each HTTP request goes to
    ``requests``: the preorder's latency from ``since``, the others' from their sending.
    """
    query = {"order_id": order.order_id, "hmac": order.hmac}
    answer = await load.call(
        requests,
        client,
        "GET",
        "/4.0/payments/v1/preorder",
        since=since,
        timeout=timeout,
        params={**query, "service": "restaurant"},
    )
    if answer.outcome != load.OK:
        return answer.outcome, 0.0
    preorder = orjson.loads(answer.body)
    body = {
        "service": "restaurant",
        **query,
        "payment_method": {"type": "card", "id": card},
        "amount": preorder["bill"]["amount"],
        "currency": preorder["bill"]["currency"],
        "bill_version": preorder["bill_version"],
    }
    started = time.perf_counter()
    answer = await load.call(
        requests,
        client,
        "POST",
        "/4.0/payments/v1/orders",
        since=started,
        timeout=timeout,
        body=orjson.dumps(body),
    )
    if answer.outcome != load.OK:
        return answer.outcome, started
    outcome = await follow_status(
        client,
        "/4.0/payments/v1/orders",
        query,
        deadline=deadline,
        poll_interval=poll_interval,
        timeout=timeout,
        wait_ms=wait_ms,
        requests=requests,
    )
    return outcome, started


async def follow_status(
    client: wire.Client,
    path: str,
    query: dict[str, str],
    *,
    deadline: float,
    poll_interval: float,
    timeout: float,
    wait_ms: int,
    requests: load.Stream | None = None,
) -> str:
    """Ask for the status until it is final, as the payer page does: a long-poll of
    ``wait_ms`` (0: plain polls), asked again at once after an answer that took at least
    X-Polling-Delay, after that delay otherwise. ok once PAYED, error once DECLINED."""
    params = {**query, "wait_ms": str(wait_ms)} if wait_ms else query
    while True:
        sent = time.perf_counter()
        answer = await load.call(
            requests,
            client,
            "GET",
            path,
            since=sent,
            timeout=timeout + wait_ms / 1000,
            params=params,
        )
        delay = poll_interval
        if answer.outcome == load.OK:
            status = orjson.loads(answer.body).get("status")
            if status == "PAYED":
                return load.OK
            if status == "DECLINED":
                return load.ERROR
            delay = float(answer.headers.get("x-polling-delay", poll_interval))
            if time.perf_counter() - sent >= delay:
                delay = 0  # the server held the call: it has waited already
        left = deadline - time.perf_counter()
        if left <= 0:
            return load.TIMEOUT
        await asyncio.sleep(min(delay, left))


async def pay_all(
    api: str, orders: list[pos.Order], concurrency: int, poll_interval: float, wait_ms: int
) -> Run:
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(concurrency)
    client = wire.Client(
        api,
        connections=concurrency * 2,
        headers={"X-Yandex-UID": USER},
        ticket=stand_in_ticket(TOOLS_IDENTITY, "payments-eda"),
    )

    async def one(order: pos.Order) -> None:
        nonlocal errors
        async with slots:
            now = time.perf_counter()
            outcome, started = await pay_order(
                client,
                order,
                card=CARD,
                since=now,
                deadline=now + 30,
                poll_interval=poll_interval,
                timeout=30,
                wait_ms=wait_ms,
            )
            if outcome == load.OK:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    elapsed = await timed_gather(client, (one(order) for order in orders))
    way = f"long-poll {wait_ms} ms" if wait_ms else "polls"
    return Run(
        f"payments, {way} (concurrency {concurrency})", len(latencies), elapsed, latencies, errors
    )


# A split bill (pos.bill: 1500.00 in two lines, 700.00 and 800.00): three guests at once
# take two equal shares of four (375.00 each) and the first line (700.00); the fourth pays
# the rest (50.00) with a 10% tip.
AT_ONCE: tuple[dict[str, str], ...] = (
    {"way": "equal", "parts": "4"},
    {"way": "equal", "parts": "4"},
    {"way": "items", "items": "0"},
)
LAST: dict[str, str] = {"way": "rest"}
SHARES_PER_ORDER = len(AT_ONCE) + 1


async def start_share(
    client: wire.Client, order: pos.Order, choice: dict[str, str], timeout: float, **tip: int
) -> tuple[str, float]:
    """A guest's share as the page pays it: quote, then pay at the quoted price. Returns the
    share's id ("" if refused) and when its pay request was sent."""
    query = {"order_id": order.order_id, "hmac": order.hmac}
    answer = await load.call(
        None,
        client,
        "GET",
        "/4.0/payments/v1/orders/share/quote",
        since=time.perf_counter(),
        timeout=timeout,
        params={**query, **choice},
    )
    if answer.outcome != load.OK:
        return "", 0.0
    share: dict[str, object] = dict(choice)
    if "parts" in choice:
        share["parts"] = int(choice["parts"])
    if "items" in choice:
        share["items"] = [int(choice["items"])]
    body = {
        "service": "restaurant",
        **query,
        "payment_method": {"type": "card", "id": CARD},
        "amount": orjson.loads(answer.body)["amount"],
        "currency": "RUB",
        "share": share,
        **tip,
    }
    started = time.perf_counter()
    answer = await load.call(
        None,
        client,
        "POST",
        "/4.0/payments/v1/orders/share",
        since=started,
        timeout=timeout,
        body=orjson.dumps(body),
        # One token per share, as the page makes one per tap (issue 18).
        headers={IDEMPOTENCY_TOKEN_HEADER: secrets.token_urlsafe(18)},
    )
    if answer.outcome != load.OK:
        return "", started
    return str(orjson.loads(answer.body)["share_id"]), started


async def share_paid(
    client: wire.Client,
    order: pos.Order,
    share_id: str,
    *,
    deadline: float,
    poll_interval: float,
    timeout: float,
    wait_ms: int,
) -> bool:
    """The share's status until it is PAYED (``follow_status``)."""
    query = {"order_id": order.order_id, "hmac": order.hmac, "share_id": share_id}
    outcome = await follow_status(
        client,
        "/4.0/payments/v1/orders/share",
        query,
        deadline=deadline,
        poll_interval=poll_interval,
        timeout=timeout,
        wait_ms=wait_ms,
    )
    return outcome == load.OK


async def split_all(
    api: str, orders: list[pos.Order], concurrency: int, poll_interval: float, wait_ms: int
) -> tuple[Run, Run]:
    """Every order split by four guests, ``concurrency`` orders at a time: the shares (latency
    from a share's pay request to its PAYED answer) and the orders (from the first quote to
    the last share's PAYED answer; done only when all four are paid)."""
    share_latencies: list[float] = []
    order_latencies: list[float] = []
    share_errors = order_errors = 0
    slots = asyncio.Semaphore(concurrency)
    # As the whole-bill guests: the identity payments-eda reads behind the API proxy.
    client = wire.Client(
        api,
        connections=concurrency * 8,
        headers={"X-Yandex-UID": USER},
        ticket=stand_in_ticket(TOOLS_IDENTITY, "payments-eda"),
    )

    async def guest(order: pos.Order, started: tuple[str, float], deadline: float) -> bool:
        nonlocal share_errors
        share_id, sent = started
        paid = bool(share_id) and await share_paid(
            client,
            order,
            share_id,
            deadline=deadline,
            poll_interval=poll_interval,
            timeout=30,
            wait_ms=wait_ms,
        )
        if paid:
            share_latencies.append(time.perf_counter() - sent)
        else:
            share_errors += 1
        return paid

    async def one(order: pos.Order) -> None:
        nonlocal order_errors
        async with slots:
            began = time.perf_counter()
            deadline = began + 30
            first = await asyncio.gather(*(start_share(client, order, c, 30) for c in AT_ONCE))
            # The rest is priced once the others are reserved (held shares are not left).
            last = await start_share(client, order, LAST, 30, tip_percent=10)
            paid = await asyncio.gather(*(guest(order, s, deadline) for s in (*first, last)))
            if all(paid):
                order_latencies.append(time.perf_counter() - began)
            else:
                order_errors += 1

    elapsed = await timed_gather(client, (one(order) for order in orders))
    label = f"split: {{}} ({SHARES_PER_ORDER} shares per order, {concurrency} orders at once)"
    shares = Run(
        label.format("shares"), len(share_latencies), elapsed, share_latencies, share_errors
    )
    whole = Run(
        label.format("orders"), len(order_latencies), elapsed, order_latencies, order_errors
    )
    return shares, whole


class CpuMeter:
    """CPU spent by the services' processes and the benchmark's PostgreSQL backends."""

    def __init__(self, processes: list[local.Process], databases: set[str]) -> None:
        self.processes = processes
        self.databases = databases
        self.before = {p.name: harness.cpu_seconds(p.popen.pid) for p in processes}
        self.pg_before = harness.postgres_cpu_by_process(databases)

    def spent_ms(self) -> dict[str, float]:
        spent = {
            p.name: (harness.cpu_seconds(p.popen.pid) - self.before[p.name]) * 1000
            for p in self.processes
        }
        pg_after = harness.postgres_cpu_by_process(self.databases)
        spent["postgresql"] = harness.cpu_spent(self.pg_before, pg_after) * 1000
        return spent


class RequestMeter:
    """HTTP requests each service answered, by route, between two scrapes of its /metrics:
    the calls a payment makes, beside the CPU they cost."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.before = self._scrape()

    def _scrape(self) -> dict[tuple[str, str], float]:
        counts: dict[tuple[str, str], float] = {}
        for name, url in self.urls.items():
            with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:  # noqa: S310
                text = answer.read().decode()
            for family in text_string_to_metric_families(text):
                if family.name != "qrpay_http_requests":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        route = f"{sample.labels['method']} {sample.labels['handler']}"
                        counts[(name, route)] = counts.get((name, route), 0) + sample.value
        return counts

    def line(self, what: str, done: int) -> str:
        after = self._scrape()
        done = max(1, done)
        by_service: dict[str, list[tuple[str, float]]] = {}
        for (name, route), count in after.items():
            spent = count - self.before.get((name, route), 0)
            if spent > 0 and not route.endswith(("/metrics", "/ping", "/ready")):
                by_service.setdefault(name, []).append((route, spent / done))
        parts = []
        for name, routes in sorted(by_service.items(), key=lambda kv: -sum(r[1] for r in kv[1])):
            routes.sort(key=lambda r: -r[1])
            inner = ", ".join(f"{route} {n:.1f}" for route, n in routes[:4])
            parts.append(f"{name} {sum(n for _, n in routes):.1f} ({inner})")
        return f"requests per {what}, by service: " + "; ".join(parts)


def cpu_line(what: str, cpu_ms: dict[str, float], done: int) -> str:
    """Where the CPU went per ``what``, by process (the cost model behind the rate)."""
    done = max(1, done)
    by_process = sorted(cpu_ms.items(), key=lambda kv: -kv[1])
    return (
        f"CPU per {what}, by process (ms): "
        + ", ".join(f"{name} {spent / done:.1f}" for name, spent in by_process)
        + f"; total {sum(cpu_ms.values()) / done:.1f}"
    )


@dataclass(frozen=True)
class PaymentJob:
    """Payments in an open loop: in this process (``payment_stream``) or its own
    (``run_payment_job``)."""

    api: str
    orders: list[pos.Order]
    user: str
    card: str
    rate: float
    seconds: float
    timeout: float = 30.0
    deadline: float = 30.0
    connections: int = 256
    start_at: float | None = None
    poll_interval: float = 1.0


async def payment_stream(job: PaymentJob) -> tuple[load.Stream, load.Stream]:
    """Payments started in an open loop at ``job.rate`` per second, one order each.

    Returns two streams: whole payments (latency from the due time to the PAYED answer;
    ``job.deadline`` seconds at most) and every HTTP request they made (preorder, pay, polls).
    """
    payments = load.Stream("payments (to PAYED)", job.rate, job.seconds)
    requests = load.Stream("payment API requests", 0.0, job.seconds)
    client = wire.Client(
        job.api,
        connections=job.connections,
        headers={"X-Yandex-UID": job.user},
        ticket=stand_in_ticket(TOOLS_IDENTITY, "payments-eda"),
    )
    count = min(len(job.orders), int(job.rate * job.seconds))

    async def fire(index: int, due: float) -> None:
        outcome, _ = await pay_order(
            client,
            job.orders[index],
            card=job.card,
            since=due,
            deadline=due + job.deadline,
            poll_interval=job.poll_interval,
            timeout=job.timeout,
            requests=requests,
        )
        payments.record(outcome, time.perf_counter() - due)

    try:
        await load.open_loop(payments, fire, count=count, start_at=job.start_at)
    finally:
        client.close()
    requests.window = payments.window
    return payments, requests


def run_payment_job(job: PaymentJob) -> tuple[load.Stream, load.Stream]:
    """Entry point of a load-generator process: payments, with the process's own CPU."""
    (payments, requests), cpu = load.run_in_process(payment_stream(job))
    payments.cpu_seconds = cpu
    return payments, requests


async def baseline_loop(url: str, count: int, concurrency: int) -> Run:
    """The client side alone: three requests per 'payment' against a bare FastAPI app."""
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(concurrency)
    client = wire.Client(url, connections=concurrency * 2)

    async def one(index: int) -> None:
        nonlocal errors
        async with slots:
            try:
                started = time.perf_counter()
                body = orjson.dumps({"client_id": "rest-1", "orders": [f"o-{index}"]})
                await client.request("POST", "/orders/list", body=body, timeout=30)
                for _ in range(2):
                    await client.request("GET", "/ping", timeout=30)
                latencies.append(time.perf_counter() - started)
            except (OSError, TimeoutError):
                errors += 1

    elapsed = await timed_gather(client, (one(i) for i in range(count)))
    return Run(
        f"baseline: bare FastAPI, 3 requests (concurrency {concurrency})",
        len(latencies),
        elapsed,
        latencies,
        errors,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument(
        "--polling-delay", type=float, default=0.1, help="the X-Polling-Delay the services send"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--worker-concurrency", type=int, default=32)
    parser.add_argument("--payments-eda-workers", type=int, default=1)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.1,
        help="seconds between status polls when the server sends no X-Polling-Delay",
    )
    parser.add_argument(
        "--wait-ms",
        type=int,
        default=20_000,
        help="the status long-poll's wait_ms, as the payer page asks (0: polls only)",
    )
    parser.add_argument(
        "--no-polls",
        action="store_true",
        help="skip the second pass, with plain polls as an older client makes them",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help=f"then split bills in the same run: {SHARES_PER_ORDER} guests per order",
    )
    parser.add_argument(
        "--split-orders", type=int, default=250, help="orders to split (with --split)"
    )
    parser.add_argument(
        "--split-concurrency",
        type=int,
        default=8,
        help=f"orders split at once (each by {SHARES_PER_ORDER} guests)",
    )
    args = parser.parse_args(argv)

    # Each figure is printed as soon as it is measured: a later failure loses none of them.
    print(f"{'run':52} {'per s':>9} {'p50 ms':>9} {'p99 ms':>9} {'done':>6} {'errors':>6}")
    with (
        tempfile.TemporaryDirectory(prefix="qrpay-bench-pay-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        (workdir / "var").mkdir()
        databases = {
            name: stack.enter_context(local.fresh_database(f"qrpay_bench_{name}"))
            for name in DATABASES
        }
        queue_url = stack.enter_context(local.fresh_database("qrpay_bench_queue"))
        ports = {name: free_port() for name in SERVICES}
        env = configure(workdir, ports, databases, queue_url, args.polling_delay)
        local.migrate(env)
        processes = [
            local.serve(
                name,
                ports[name],
                args.payments_eda_workers if name == "payments-eda" else 1,
                env,
                workdir,
            )
            for name in SERVICES
        ]
        processes.append(
            local.start("worker", local.worker_args(args.worker_concurrency), 0, env, workdir)
        )
        url = {p.name: p.url for p in processes}
        try:
            for process in processes[:-1]:
                local.wait_ready(process)

            split_count = args.split_orders + max(5, args.split_orders // 20) if args.split else 0

            async def prepare_orders(count: int) -> list[pos.Order]:
                async with aiohttp.ClientSession() as session:
                    await bind_card(session, url["cardstorage"])
                return await pos.create_orders(url["iiko-integration"], count)

            # The payer page's way first (long-polls), then plain polls, each on its own orders.
            ways = [args.wait_ms] + ([0] if args.wait_ms and not args.no_polls else [])
            paid = args.payments * len(ways)
            orders = asyncio.run(prepare_orders(paid + split_count))
            orders, to_split = orders[:paid], orders[paid:]
            ours = {url.rsplit("/", 1)[1] for url in [*databases.values(), queue_url]}
            failed = 0
            for index, wait_ms in enumerate(ways):
                mine = orders[index * args.payments : (index + 1) * args.payments]
                warm, mine = mine[: max(20, len(mine) // 20)], mine[max(20, len(mine) // 20) :]
                way = f"long-polls of {wait_ms} ms" if wait_ms else "polls"
                print(
                    f"{len(mine)} orders (+{len(warm)} to warm up); paying, {way} ...", flush=True
                )
                pay = functools.partial(
                    pay_all,
                    url["payments-eda"],
                    concurrency=args.concurrency,
                    poll_interval=args.poll_interval,
                    wait_ms=wait_ms,
                )
                uvloop.run(pay(warm))
                meter = CpuMeter(processes, ours)
                calls = RequestMeter({p.name: p.url for p in processes[:-1]})
                result = uvloop.run(pay(mine))
                print(result.row(), flush=True)
                print(cpu_line("payment", meter.spent_ms(), result.payments), flush=True)
                print(calls.line("payment", result.payments), flush=True)
                failed += result.errors
            if args.split:
                warm, to_split = (
                    to_split[: split_count - args.split_orders],
                    to_split[-args.split_orders :],
                )
                print(f"{len(to_split)} orders to split (+{len(warm)} to warm up) ...", flush=True)
                concurrency = args.split_concurrency
                split = functools.partial(
                    split_all,
                    url["payments-eda"],
                    concurrency=concurrency,
                    poll_interval=args.poll_interval,
                    wait_ms=args.wait_ms,
                )
                uvloop.run(split(warm))
                meter = CpuMeter(processes, ours)
                calls = RequestMeter({p.name: p.url for p in processes[:-1]})
                shares, whole = uvloop.run(split(to_split))
                print(shares.row(), flush=True)
                print(whole.row(), flush=True)
                spent = meter.spent_ms()
                print(cpu_line("share", spent, shares.payments), flush=True)
                print(cpu_line("split order", spent, whole.payments), flush=True)
                print(calls.line("share", shares.payments), flush=True)
                failed += shares.errors
        finally:
            for process in reversed(processes):
                process.stop()

        with harness.baseline(1, workdir) as baseline:
            uvloop.run(baseline_loop(baseline.url, 200, args.concurrency))
            print(uvloop.run(baseline_loop(baseline.url, args.payments, args.concurrency)).row())

    print(
        f"\nlatency: from the pay request to the first PAYED status answer (long-polled, or "
        f"polled as X-Polling-Delay says: {args.polling_delay * 1000:.0f} ms); six services, 1 process each "
        f"(payments-eda {args.payments_eda_workers}), one worker (concurrency "
        f"{args.worker_concurrency}), PostgreSQL, all on {os.cpu_count()} cores shared "
        "with the load generator"
    )
    if args.split:
        print(
            "split: a share's latency is from its pay request to its first PAYED status answer, "
            "an order's from its first quote to its last share's PAYED answer"
        )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
