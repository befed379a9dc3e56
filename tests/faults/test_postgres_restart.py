"""PostgreSQL restarted under load: every service recovers by itself, no qrpay process restarted.

The whole production-shaped stack runs on a private PostgreSQL server of this test (all
databases and the queue): eda, cardstorage, cashback, transactions, payments-eda and
iiko-integration as `qrpay serve` processes, one `qrpay worker payments-eda`. A steady load
runs: POS create + list through iiko-integration and pay requests through payments-eda
(orders the POS created). In the middle the server is stopped (``pg_ctl stop -m fast``: every
session ends) and started again ~4 s later.

Checks, by when a request started (before the stop / during the outage / after PostgreSQL is
back): before, everything 200; during, only 200 or a clean 503 with an error code (no 500, no
hang); after, everything 200. /ready of every service with a database answers 503 during the
outage and 200 after. Every order that got 200 on pay ends PAYED with one hold, one clear, one
accrual, or, when its hold met the outage (a 200 `WAITING` with an unknown outcome), given back
by the sweep with no money moved (the guest pays again); no order that got 503 is PAYED or left
with a held amount; no queue task failed; every qrpay process is the one started at the
beginning.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from tests.support.kill_chaos import ACCRUALS_BY_ORDER, OPERATIONS_BY_ORDER
from tests.support.payments_cluster import (
    DATABASES,
    USER,
    Cluster,
    cluster_serving,
    sql,
    unfinished_jobs,
)
from tests.support.private_postgres import PrivatePostgres
from tests.support.tickets import as_api_proxy

# ~70 s on a quiet 2-core box; starting seven processes on a busy one can take a minute more.
pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(300)]

API_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["api_keys"][0]["key"]
AMOUNT = "1000.00"
WARM_UP = 4.0  # seconds of load before the stop
DOWN_FOR = 4.0  # seconds from the stop to the start of PostgreSQL
AFTER = 8.0  # seconds of load once PostgreSQL is back
POS_LOOPS = 2
PAY_LOOPS = 2
CLIENT_TIMEOUT = 20.0  # no answer within this is a hang
READY_SERVICES = ("eda", "cardstorage", "cashback", "transactions", "payments-eda")
WITH_DATABASE = ("eda", "cardstorage", "cashback", "transactions")
UNHANDLED_MARKS = ("unhandled_error", "Traceback", "answered 500", "exception was never retrieved")


@dataclass
class Sample:
    kind: str
    started: float
    ended: float
    status: int  # -1: no HTTP answer (connection error, timeout)
    code: str = ""


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    created: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    paid: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            answer = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.samples.append(Sample(kind, started, time.monotonic(), -1, type(exc).__name__))
            return None
        code = ""
        if answer.status_code != 200:
            try:
                code = str(answer.json().get("code", ""))
            except ValueError:
                code = "not-json"
        self.samples.append(Sample(kind, started, time.monotonic(), answer.status_code, code))
        return answer


class Stack(Cluster):
    """The payer stack of tests/integration/payments plus iiko-integration, on one server."""

    def serve_iiko(self) -> None:
        self.serve("iiko-integration", self.ports["iiko-integration"])


async def create_databases(admin_url: str, count: int) -> list[str]:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    urls = []
    try:
        async with engine.connect() as connection:
            for _ in range(count):
                name = f"qrpay_{uuid.uuid4().hex[:12]}"
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
                urls.append(admin_url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        await engine.dispose()
    return urls


@contextmanager
def stack_on(tmp: Path, databases: dict[str, str], queue_url: str) -> Iterator[Stack]:
    def serve(instance: Stack) -> None:
        instance.serve_all()
        instance.serve_iiko()

    with cluster_serving(lambda: Stack(tmp, databases, queue_url), serve) as instance:
        yield instance


@pytest.fixture
async def stack(tmp_path: Path, private_postgres: PrivatePostgres) -> AsyncIterator[Stack]:
    """The stack, every database and the queue on the test's private server."""
    urls = await create_databases(private_postgres.admin_url, len(DATABASES) + 1)
    with stack_on(tmp_path, dict(zip(DATABASES, urls[:-1], strict=True)), urls[-1]) as instance:
        yield instance


# --- the load ---------------------------------------------------------------------------------


async def pos_loop(stack: Stack, load: Load, client: httpx.AsyncClient) -> None:
    iiko = stack.url("iiko-integration")
    headers = {"X-API-Key": API_KEY}
    recent: list[str] = []
    while not load.stop.is_set():
        answer = await load.request(
            client,
            "pos-create",
            "POST",
            f"{iiko}/orders",
            headers=headers,
            json={
                "client_id": "rest-1",
                "internal_order_id": f"pg-restart-{uuid.uuid4().hex[:16]}",
                "bill": {
                    "currency": "RUB",
                    "amount": AMOUNT,
                    "elements": [{"name": "Dinner", "amount": AMOUNT}],
                },
            },
        )
        if answer is not None and answer.status_code == 200:
            body = answer.json()
            link = next(line["value"] for line in body["bill_lines"] if line["type"] == "qr-code")
            query = parse_qs(urlsplit(link).query)
            load.created.put_nowait((query["order_id"][0], query["hmac"][0]))
            recent = [body["order_id"], *recent][:5]
        if recent:
            await load.request(
                client,
                "pos-list",
                "POST",
                f"{iiko}/orders/list",
                headers=headers,
                json={"client_id": "rest-1", "orders": recent},
            )
        await asyncio.sleep(0.05)


async def pay_loop(stack: Stack, load: Load, client: httpx.AsyncClient) -> None:
    url = f"{stack.url('payments-eda')}/4.0/payments/v1/orders"
    while not load.stop.is_set():
        try:
            order_id, signature = await asyncio.wait_for(load.created.get(), timeout=0.5)
        except TimeoutError:
            continue
        answer = await load.request(
            client,
            "pay",
            "POST",
            url,
            json=stack.pay_body(order_id, signature, AMOUNT),
            headers=as_api_proxy(USER),
        )
        if answer is not None and answer.status_code == 200:
            load.paid.append(order_id)
        else:
            load.refused.append(order_id)
        await asyncio.sleep(0.05)


async def ready_loop(stack: Stack, load: Load, client: httpx.AsyncClient) -> None:
    while not load.stop.is_set():
        await asyncio.gather(
            *(
                load.request(client, f"ready:{name}", "GET", f"{stack.url(name)}/ready")
                for name in READY_SERVICES
            )
        )
        await asyncio.sleep(0.2)


# --- the checks -------------------------------------------------------------------------------


def phase(sample: Sample, stopped: float, back: float) -> str:
    if sample.started >= back:
        return "after"
    if sample.ended < stopped:
        return "before"
    return "during"


def by_phase(
    samples: list[Sample], stopped: float, back: float
) -> dict[str, dict[str, Counter[int]]]:
    table: dict[str, dict[str, Counter[int]]] = {}
    for sample in samples:
        kind = "ready" if sample.kind.startswith("ready:") else sample.kind
        table.setdefault(phase(sample, stopped, back), {}).setdefault(kind, Counter())[
            sample.status
        ] += 1
    return table


def render(table: dict[str, dict[str, Counter[int]]]) -> str:
    parts = []
    for name in ("before", "during", "after"):
        kinds = table.get(name, {})
        rendered = ", ".join(
            f"{kind} " + "/".join(f"{status}x{n}" for status, n in sorted(counts.items()))
            for kind, counts in sorted(kinds.items())
        )
        parts.append(f"{name}: {rendered or '-'}")
    return "; ".join(parts)


def request_violations(samples: list[Sample], stopped: float, back: float) -> list[str]:
    found = []
    for sample in samples:
        if sample.kind.startswith("ready:"):
            continue
        when = phase(sample, stopped, back)
        took = sample.ended - sample.started
        what = f"{sample.kind} {when} +{sample.started - stopped:.2f}s took {took:.2f}s"
        if sample.status == -1:
            found.append(f"{what}: no answer ({sample.code})")
        elif when == "during" and sample.status not in (200, 503):
            found.append(f"{what}: {sample.status} {sample.code}")
        elif when == "during" and sample.status == 503 and not sample.code:
            found.append(f"{what}: 503 without an error code")
        elif when != "during" and sample.status != 200:
            found.append(f"{what}: {sample.status} {sample.code}")
    return found


def first_success_after(samples: list[Sample], kind: str, back: float) -> float | None:
    ends = [s.ended for s in samples if s.kind == kind and s.status == 200 and s.ended >= back]
    return min(ends) - back if ends else None


@dataclass
class Snapshot:
    """Every order of the run as the databases have it, read in one query per database."""

    status: dict[str, str]
    accruals: dict[str, list[Decimal]]
    operations: dict[str, list[tuple[str, str]]]
    jobs: list[tuple[Any, ...]]

    @classmethod
    def of(cls, stack: Stack, load: Load) -> Snapshot:
        ids = list({*load.paid, *load.refused})
        status = dict(
            sql(stack.databases["eda"], "SELECT id, status FROM orders WHERE id = ANY(%s)", ids)
        )
        accrued: dict[str, list[Decimal]] = {}
        for order_id, amount in sql(stack.databases["cashback"], ACCRUALS_BY_ORDER, ids):
            accrued.setdefault(order_id, []).append(Decimal(amount))
        ops: dict[str, list[tuple[str, str]]] = {}
        for order_id, _, kind, op_status, _, _ in sql(
            stack.databases["transactions"], OPERATIONS_BY_ORDER, ids
        ):
            ops.setdefault(order_id, []).append((kind, op_status))
        return cls(status, accrued, ops, unfinished_jobs(stack))

    def unsettled(self, load: Load) -> list[str]:
        found = [
            f"paid {o} {self.status.get(o)} accruals {self.accruals.get(o, [])}"
            for o in load.paid
            if not self.given_back(o)
            and (self.status.get(o) != "PAYED" or not self.accruals.get(o))
        ]
        found += [
            f"refused {o} {self.operations.get(o)}"
            for o in load.refused
            if held(self.operations.get(o, []))
        ]
        return found + [f"job {row}" for row in self.jobs]

    def given_back(self, order_id: str) -> bool:
        """A pay that answered 200 while its hold's outcome was unknown, rolled back by the sweep
        because the hold never arrived: the order waits again and no money moved."""
        ops = self.operations.get(order_id, [])
        return (
            self.status.get(order_id) == "WAITING"
            and not held(ops)
            and not any(kind == "clear" and status == "succeeded" for kind, status in ops)
            and not self.accruals.get(order_id)
        )


def held(ops: list[tuple[str, str]]) -> bool:
    """A hold that succeeded and was neither cleared nor released (yet)."""
    holds = sum(1 for kind, status in ops if kind == "hold" and status == "succeeded")
    ends = sum(1 for kind, status in ops if kind in ("clear", "unhold") and status == "succeeded")
    pending = any(status == "pending" for _, status in ops)
    return pending or holds > ends


async def test_services_recover_from_a_postgres_restart_under_load(
    stack: Stack, private_postgres: PrivatePostgres
) -> None:
    worker, _ = stack.worker("a")
    processes = [process for process, _ in stack.processes]
    load = Load()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
        loops = [
            *(asyncio.create_task(pos_loop(stack, load, client)) for _ in range(POS_LOOPS)),
            *(asyncio.create_task(pay_loop(stack, load, client)) for _ in range(PAY_LOOPS)),
            asyncio.create_task(ready_loop(stack, load, client)),
        ]
        await asyncio.sleep(WARM_UP)
        stopped, back = await asyncio.to_thread(private_postgres.restart, down_for=DOWN_FOR)
        await asyncio.sleep(AFTER)
        load.stop.set()
        await asyncio.gather(*loops)
    load_ended = time.monotonic()

    violations: list[str] = []
    deadline = time.monotonic() + 40
    while unsettled := (snapshot := Snapshot.of(stack, load)).unsettled(load):
        if time.monotonic() > deadline:
            violations.append(f"not converged 40 s after the load: {unsettled[:10]}")
            break
        await asyncio.sleep(0.3)
    settled = time.monotonic() - load_ended

    violations += request_violations(load.samples, stopped, back)
    given_back = [order_id for order_id in load.paid if snapshot.given_back(order_id)]
    for order_id in load.paid:
        if order_id in given_back:
            continue
        # A canceled hold was voided before it reached the gateway: it moved no money.
        ops = [op for op in snapshot.operations.get(order_id, []) if op != ("hold", "canceled")]
        if ops != [("hold", "succeeded"), ("clear", "succeeded")]:
            violations.append(f"paid order {order_id}: operations {ops}")
        if snapshot.accruals.get(order_id, []) != [Decimal(300)]:
            violations.append(f"paid order {order_id}: accruals {snapshot.accruals.get(order_id)}")
    for order_id in load.refused:
        if snapshot.status.get(order_id) == "PAYED":
            violations.append(f"order {order_id} PAYED after its pay got no 200")
        if snapshot.accruals.get(order_id):
            violations.append(f"order {order_id} has cashback after its pay got no 200")
    ready = [s for s in load.samples if s.kind.startswith("ready:")]
    for name in WITH_DATABASE:
        mine = [s for s in ready if s.kind == f"ready:{name}"]
        if not any(s.status == 503 and phase(s, stopped, back) == "during" for s in mine):
            violations.append(f"{name} /ready never answered 503 during the outage")
        last = max(mine, key=lambda s: s.started)
        if last.status != 200:
            violations.append(f"{name} /ready answers {last.status} at the end")
    for process, (_, log) in zip(processes, stack.processes, strict=False):
        if process.poll() is not None:
            violations.append(f"{log.name}: the process exited with {process.returncode}")
    if worker.poll() is not None:
        violations.append(f"the worker exited with {worker.returncode}")
    # A 500 inside the stack is hidden from the POS and the guest (their callers retry and
    # answer 503): look for it in every process's log.
    unhandled = 0
    for _, log in stack.processes:
        lines = log.read_text(errors="replace").splitlines()
        bad = [line for line in lines if any(mark in line for mark in UNHANDLED_MARKS)]
        unhandled += len(bad)
        violations += [f"{log.name}: {line[:200]}" for line in bad[:3]]
    failed = sql(
        stack.queue_url, "SELECT id, task_name FROM procrastinate_jobs WHERE status = 'failed'"
    )
    violations += [f"failed queue task {row}" for row in failed]

    firsts = {
        kind: first_success_after(load.samples, kind, back)
        for kind in ("pos-create", "pos-list", "pay", *(f"ready:{n}" for n in READY_SERVICES))
    }
    print(
        f"\npostgres restart: down {back - stopped:.1f}s;"
        f" requests {render(by_phase(load.samples, stopped, back))};"
        " first success after PostgreSQL was back: "
        + ", ".join(f"{kind} {'never' if t is None else f'{t:.2f}s'}" for kind, t in firsts.items())
        + f"; pay got 200: {len(load.paid)} ({len(given_back)} of them given back by the"
        + f" sweep, the hold never made), got no 200: {len(load.refused)};"
        f" converged {settled:.1f}s after the load ended; 500s or tracebacks in the"
        f" services' logs: {unhandled}; violations: {len(violations)}"
    )
    for violation in violations[:30]:
        print(f"  violation: {violation}")
    assert violations == [], f"{len(violations)} violations\n{stack.logs()}"
    assert load.paid, "no pay request got 200: the test tested nothing"
    assert any(phase(s, stopped, back) == "during" for s in load.samples), "none met the outage"
