"""The payer side in production shape: each service a `qrpay serve` process on PostgreSQL,
the durable queue on PostgreSQL, `qrpay worker payments-eda` processes started by the test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import yaml
from sqlalchemy.engine import make_url

from qrpay.kernel.config import load_yaml
from qrpay.kernel.deeplink import sign
from qrpay.kernel.queue import libpq_url
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.embedded import embedded_config, ports_for
from tests.support.faults import SelectiveFaultProxy
from tests.support.kill_chaos import (
    ACCRUALS_BY_ORDER,
    OPERATIONS_BY_ORDER,
    RETRYABLE,
    Databases,
)
from tests.support.processes import (
    QRPAY,
    PortTaken,
    ServedProcesses,
    child_env,
    free_port_base,
    run,
    start,
    wait_for_text,
)
from tests.support.tickets import ticket_headers

SERVED = ("eda", "cardstorage", "cashback", "transactions", "payments-eda")
DATABASES = ("eda", "cardstorage", "cashback", "transactions")
HMAC_KEY = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")["hmac_keys"][0]
USER = "pg-user"
CARD = "pg-card-ok"


def slow_gateway(config: dict[str, Any], latency_ms: int) -> None:
    """Make the sandbox gateway of ``config`` (a config's data) take ``latency_ms`` a call."""
    gateway = config["transactions"].get("gateway", {})
    config["transactions"]["gateway"] = {**gateway, "latency_ms": latency_ms}


def config_data(base: int, **overrides: Any) -> dict[str, Any]:
    data = embedded_config(load_yaml(REPO_DEV_CONFIG / "config.yaml"), "127.0.0.1", base)
    data["transactions"]["relay_interval_seconds"] = 0.2
    # A shared 2-core CI box running 50 requests at once: time-outs here would test the box.
    for service in data["services"].values():
        service["timeout_ms"] = 10_000
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


AnyCluster = TypeVar("AnyCluster", bound="Cluster")


def serve_on_free_ports(
    build: Callable[[int], AnyCluster], serve: Callable[[AnyCluster], None], *, tries: int = 3
) -> AnyCluster:
    """``build(attempt)`` a stack on probed free ports and ``serve`` it, started over on new
    ports when a test running in parallel took one before we bound it; a stack that failed
    to start is stopped here."""
    for attempt in range(tries):
        instance = build(attempt)
        try:
            serve(instance)
            return instance
        except PortTaken:
            instance.stop()
            if attempt == tries - 1:
                raise
        except BaseException:
            instance.stop()
            raise
    raise AssertionError("tries must be at least 1")


@contextmanager
def cluster_serving(
    build: Callable[[], AnyCluster], serve: Callable[[AnyCluster], None]
) -> Iterator[AnyCluster]:
    """``build()`` a stack, migrate the databases once, serve it on free ports and bind the
    demo card; stopped on the way out (before its databases may be dropped)."""

    def attempt(number: int) -> AnyCluster:
        instance = build()
        if number == 0:
            instance.upgrade()
        return instance

    instance = serve_on_free_ports(attempt, serve)
    try:
        instance.bind_card()
        yield instance
    finally:
        instance.stop()


class Cluster(ServedProcesses):
    stop_timeout = 15.0

    def __init__(self, tmp: Path, databases: dict[str, str], queue_url: str) -> None:
        self.tmp = tmp
        self.base = free_port_base(len(ports_for(8080)))
        self.ports = ports_for(self.base)
        self.databases = databases
        self.queue_url = queue_url
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        secdist = load_yaml(REPO_DEV_CONFIG / "secdist.yaml")
        secdist["databases"] = databases
        secdist["queue_database"] = queue_url
        self.secdist_path = tmp / "secdist.yaml"
        self.secdist_path.write_text(yaml.safe_dump(secdist))
        self.env = self.env_with(config_data(self.base), "config.yaml")

    def env_with(self, config: dict[str, Any], name: str) -> dict[str, str]:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
        return child_env(
            # The development secdist: said explicitly, or a production start refuses it.
            QRPAY_ENVIRONMENT="development",
            QRPAY_CONFIG=str(path),
            QRPAY_SECDIST=str(self.secdist_path),
            QRPAY_DATA_DIR=str(self.tmp / "var"),
            QRPAY_LOG_LEVEL="INFO",
            QRPAY_LOG_FORMAT="console",
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def upgrade(self) -> None:
        done = run([QRPAY, "db", "upgrade"], env=self.env, cwd=self.tmp, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "queue: schema ready" in done.stdout, done.stdout

    def serve_all(self) -> None:
        started = [(name, *self.launch(name, self.ports[name])) for name in SERVED]
        for name, process, log in started:
            self.wait_ready(name, self.ports[name], process, log)

    def worker(
        self,
        label: str,
        *,
        env: dict[str, str] | None = None,
        concurrency: int = 4,
        metrics_port: int | None = None,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"worker-{label}.log"
        metrics = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
        process = start(
            [QRPAY, "worker", "payments-eda", "--concurrency", str(concurrency), *metrics],
            log=log,
            env=env or self.env,
            cwd=self.tmp,
        )
        self.processes.append((process, log))
        wait_for_text(log, "payments-eda worker: consuming", timeout=30)
        return process, log

    def process_of(self, name: str) -> subprocess.Popen[bytes]:
        """The newest `qrpay serve NAME` process (the one ``restart`` started last)."""
        return next(
            process
            for process, _ in reversed(self.processes)
            if isinstance(process.args, list) and process.args[1:3] == ["serve", name]
        )

    def kill(self, name: str) -> None:
        """SIGKILL the process group serving ``name``: nothing in flight finishes."""
        process = self.process_of(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, name: str) -> None:
        """Serve ``name`` again on its port (its log goes on in the same file); blocks until
        it answers /ping, so an async test runs it in a thread."""
        self.serve(name, self.ports[name])

    # --- the guest and the restaurant, over HTTP ------------------------------------------

    def bind_card(self, card_id: str = CARD, token: str = "sandbox-ok-4242") -> None:  # noqa: S107
        answer = httpx.put(
            f"{self.url('cardstorage')}/v1/payment-methods/{card_id}",
            json={
                "user_id": USER,
                "token": token,
                "last4": token[-4:],
                "expiry_month": 12,
                "expiry_year": 2030,
            },
            headers=ticket_headers(to="cardstorage"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def create_order(self, amount: str = "1000.00") -> tuple[str, str]:
        answer = httpx.post(
            f"{self.url('eda')}/v1/orders",
            json={
                "client_id": "rest-1",
                "internal_order_id": f"pg-{uuid.uuid4().hex[:12]}",
                "bill": {
                    "currency": "RUB",
                    "amount": amount,
                    "elements": [{"name": "Dinner", "amount": amount}],
                },
            },
            headers=ticket_headers("iiko-integration", to="eda"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        order_id = str(answer.json()["order"]["order_id"])
        return order_id, sign(HMAC_KEY, order_id, "rest-1")

    def pay_body(self, order_id: str, signature: str, amount: str = "1000.00") -> dict[str, Any]:
        return {
            "service": "restaurant",
            "order_id": order_id,
            "hmac": signature,
            "payment_method": {"type": "card", "id": CARD},
            "amount": amount,
        }

    def order_status(self, order_id: str) -> str:
        answer = httpx.get(
            f"{self.url('eda')}/v1/orders/{order_id}",
            headers=ticket_headers("payments-eda", to="eda"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    async def wait_for_status(self, order_id: str, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.order_status(order_id)) != status:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"order {order_id} is {current}, not {status}, after {timeout}s\n{self.logs()}"
                )
            await asyncio.sleep(0.2)

    def invoice(self, order_id: str) -> dict[str, Any]:
        """The invoice of the order's latest payment (each payment has its own since issue
        18), as transactions answers it."""
        [(invoice_id,)] = sql(
            self.databases["transactions"],
            "SELECT invoice_id FROM invoices WHERE order_id = %s"
            " ORDER BY created_at DESC, invoice_id LIMIT 1",
            order_id,
        )
        answer = httpx.get(
            f"{self.url('transactions')}/v1/invoices/{invoice_id}",
            headers=ticket_headers("payments-eda", to="transactions"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


class FaultyCluster(Cluster):
    """A Cluster whose every process reaches some services through a FaultProxy."""

    proxies: dict[str, SelectiveFaultProxy]


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        return list(connection.execute(query, params).fetchall())


def operations(cluster: Cluster, order_id: str) -> list[tuple[str, str]]:
    """(kind, status) of every operation on the invoices of the order's payments, in
    transactions' own tables, a payment's operations together in their order."""
    return [
        (str(kind), str(status))
        for _, _, kind, status, _, _ in sql(
            cluster.databases["transactions"], OPERATIONS_BY_ORDER, [order_id]
        )
    ]


def accruals(cluster: Cluster, order_id: str) -> list[tuple[Any, ...]]:
    """(amount,) of each of the order's accruals."""
    return [
        (amount,) for _, amount in sql(cluster.databases["cashback"], ACCRUALS_BY_ORDER, [order_id])
    ]


def unfinished_jobs(cluster: Cluster) -> list[tuple[Any, ...]]:
    """Queue tasks still to run now (ignoring ones scheduled for later, like retries)."""
    return sql(
        cluster.queue_url,
        "SELECT id, task_name, status FROM procrastinate_jobs"
        " WHERE status IN ('todo', 'doing')"
        " AND (scheduled_at IS NULL OR scheduled_at <= now())",
    )


async def wait_until_drained(cluster: Cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while jobs := unfinished_jobs(cluster):
        if time.monotonic() > deadline:
            raise AssertionError(f"queue not drained after {timeout}s: {jobs}\n{cluster.logs()}")
        await asyncio.sleep(0.2)


def database_name(url: str) -> str:
    return str(make_url(url).database)


class ClusterDatabases(Databases):
    """tests/support/kill_chaos's long-lived connections (and so its ``violations_of``,
    ``converge`` and ``queue_jobs``) on a Cluster's databases instead of a Layout's."""

    def __init__(self, cluster: Cluster) -> None:  # no super(): it reads a Layout's secdist
        names = ("eda", "transactions", "cashback")
        self.urls = {
            **{name: cluster.databases[name] for name in names},
            "queue": cluster.queue_url,
        }
        self.connections = {}
        for name in self.urls:
            self._connect(name)


# --- guests paying like the payer page ----------------------------------------------------


@dataclass(frozen=True)
class Patience:
    """How a guest paying like the page waits and when it walks away."""

    retry_pause: float  # seconds before tapping again after a refusal or a broken connection
    poll: float  # seconds between two reads of the order after a 200
    max_taps: int
    give_up_after: float  # seconds from the first tap


@dataclass
class PayingGuest:
    order_id: str
    signature: str
    # What each tap of Pay got: "200 <guest status>", "<status> <code>", or the exception.
    taps: list[str] = field(default_factory=list)
    tap_seconds: list[float] = field(default_factory=list)  # how long each answer took
    tapping: bool = False  # a pay request is on its way
    given_back: int = 0  # times the order was WAITING again after a 200 (then tapped again)
    paid: bool = False  # saw the order PAYED, or was told it is (409 already_paid)
    gave_up: bool = False
    unexpected: list[str] = field(default_factory=list)


async def _tap(cluster: Cluster, client: httpx.AsyncClient, guest: PayingGuest) -> str:
    """One tap of Pay: "paid", "poll" (a 200), "again" (tap again after a pause) or
    "unexpected"."""
    tapped = time.monotonic()
    guest.tapping = True
    try:
        answer = await client.post(
            f"{cluster.url('payments-eda')}/4.0/payments/v1/orders",
            json=cluster.pay_body(guest.order_id, guest.signature),
            headers={"X-Yandex-UID": USER, **ticket_headers("api-proxy", to="payments-eda")},
        )
    except httpx.HTTPError as exc:
        guest.taps.append(type(exc).__name__)
        return "again"
    finally:
        guest.tapping = False
        guest.tap_seconds.append(time.monotonic() - tapped)
    if answer.status_code == 200:
        guest.taps.append(f"200 {answer.json()['status']}")
        return "poll"
    code = answer.json().get("code") if answer.content else None
    guest.taps.append(f"{answer.status_code} {code}")
    if answer.status_code == 409 and code == "already_paid":
        return "paid"
    # 409 otherwise: the attempt before is still being wound up.
    if answer.status_code == 409 or answer.status_code in RETRYABLE:
        return "again"
    guest.unexpected.append(f"pay {answer.status_code}: {answer.text}")
    return "unexpected"


async def _order_status(cluster: Cluster, client: httpx.AsyncClient, order_id: str) -> str | None:
    try:
        answer = await client.get(
            f"{cluster.url('eda')}/v1/orders/{order_id}",
            headers=ticket_headers("payments-eda", to="eda"),
        )
    except httpx.HTTPError:
        return None
    return str(answer.json()["status"]) if answer.status_code == 200 else None


async def pay_like_the_page(
    cluster: Cluster, client: httpx.AsyncClient, guest: PayingGuest, patience: Patience
) -> None:
    """Tap Pay; after a 200 read the order until it is PAYED (done) or WAITING again (the
    attempt was given back: tap again); after a 409, a 502/503/504 or a broken connection
    tap again after a pause; a 409 already_paid means paid. Any other answer is recorded in
    ``guest.unexpected`` and ends the guest's attempts, as do ``patience``'s limits."""
    give_up = time.monotonic() + patience.give_up_after
    while len(guest.taps) < patience.max_taps and time.monotonic() < give_up:
        outcome = await _tap(cluster, client, guest)
        if outcome == "paid":
            guest.paid = True
            return
        if outcome == "unexpected":
            return
        if outcome == "again":
            await asyncio.sleep(patience.retry_pause)
            continue
        while time.monotonic() < give_up:
            status = await _order_status(cluster, client, guest.order_id)
            if status == "PAYED":
                guest.paid = True
                return
            if status == "WAITING":
                guest.given_back += 1
                break
            await asyncio.sleep(patience.poll)
    guest.gave_up = True
