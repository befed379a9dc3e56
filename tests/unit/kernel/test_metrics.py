"""HTTP requests tallied in the process come out as if each had been observed on its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import generate_latest, values
from prometheus_client.values import MultiProcessValue

from qrpay.kernel.metrics import LATENCY_BUCKETS, ServiceMetrics

# Every bucket's bound itself (a bound is inclusive), between bounds, and past the last.
LATENCIES = [*LATENCY_BUCKETS, 0.0, 0.0004, 0.003, 0.3, 7.0, 11.0, 60.0]
REQUESTS = [
    ("/orders/list", "POST", 200),
    ("/orders/list", "POST", 200),
    ("/orders/list", "POST", 400),
    ("/orders", "POST", 200),
    ("unmatched", "GET", 404),
]


async def test_a_flush_adds_what_one_observation_each_would_have() -> None:
    tallied = ServiceMetrics("s")
    direct = ServiceMetrics("s")
    for index, seconds in enumerate(LATENCIES * 3):
        handler, method, status = REQUESTS[index % len(REQUESTS)]
        tallied.observe_request(handler, method, status, seconds)
        direct.http_requests.labels(handler, method, str(status)).inc()
        direct.http_latency.labels(handler, method).observe(seconds)

    assert samples(tallied) != samples(direct)
    tallied.flush()
    assert samples(tallied) == samples(direct)
    tallied.flush()  # nothing new: nothing added twice
    assert samples(tallied) == samples(direct)


def samples(metrics: ServiceMetrics) -> list[str]:
    """The exposition's lines but the creation times (they differ by when a child was made)."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


async def test_a_scrape_sees_every_request_so_far() -> None:
    metrics = ServiceMetrics("s")
    metrics.observe_request("/orders/list", "POST", 200, 0.002)
    text = metrics.exposition().decode()
    assert (
        'qrpay_http_requests_total{handler="/orders/list",method="POST",status="200"} 1.0' in text
    )


async def test_tallied_requests_are_flushed_without_a_scrape() -> None:
    metrics = ServiceMetrics("s", flush_seconds=0.0)
    flushed = asyncio.Event()
    flush = metrics.flush

    def flush_and_tell() -> None:
        flush()
        flushed.set()

    metrics.flush = flush_and_tell  # type: ignore[method-assign]
    metrics.observe_request("/orders", "POST", 200, 0.01)
    await asyncio.wait_for(flushed.wait(), timeout=10)
    count = metrics.http_requests.labels("/orders", "POST", "200")._value.get()
    assert count == 1.0


def test_with_several_workers_a_per_worker_gauge_sums_and_a_shared_one_takes_the_largest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers as uvicorn runs them: each its own mmap file in PROMETHEUS_MULTIPROC_DIR."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for pid, count in ((101, 2), (102, 3)):
        monkeypatch.setattr(values, "ValueClass", MultiProcessValue(lambda pid=pid: pid))
        worker = ServiceMetrics("s", alive=lambda _pid: True)
        worker.gauge("connections", "each worker's own", ("kind",), per_worker=True).labels(
            "stream"
        ).set(count)
        worker.gauge("open_orders", "read alike by every worker").set(7 + count)
    text = worker.exposition().decode()
    assert 'connections{kind="stream"} 5.0' in text
    assert "open_orders 10.0" in text


def test_a_dead_workers_connections_are_no_longer_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn replaced a killed worker (102): its per-worker gauge stops counting at the
    next scrape; what it counted (a request counter) stays."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    live = {101, 102}
    for pid, count in ((101, 2), (102, 3)):
        monkeypatch.setattr(values, "ValueClass", MultiProcessValue(lambda pid=pid: pid))
        worker = ServiceMetrics("s", alive=live.__contains__)
        worker.gauge("connections", "each worker's own", per_worker=True).set(count)
        worker.counter("served", "requests").inc(count)
    assert "connections 5.0" in worker.exposition().decode()
    live.discard(102)
    text = worker.exposition().decode()
    assert "connections 2.0" in text
    assert "served_total 5.0" in text
