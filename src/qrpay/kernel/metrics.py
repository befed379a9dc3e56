"""Prometheus metrics, one registry per service so one process can host several."""

from __future__ import annotations

import asyncio
import bisect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Self, get_args, get_type_hints

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# HTTP requests are tallied in the process and added to the metrics at most this late.
FLUSH_SECONDS = 1.0
# A worker's file of its "live" gauges: dropped once the worker is gone, or a killed
# worker's connections would be counted until the service restarts.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


class _Tally:
    """One handler's requests since the last flush: by status, and the latency histogram."""

    __slots__ = ("buckets", "statuses", "total_seconds")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.total_seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: +Inf


class ServiceMetrics:
    def __init__(
        self,
        service: str,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.service = service
        self.alive = alive
        self.flush_seconds = flush_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = self.counter(
            "qrpay_http_requests",
            "HTTP requests handled, by handler and status",
            ("handler", "method", "status"),
        )
        self.http_latency = self.histogram(
            "qrpay_http_request_seconds",
            "Time to answer an HTTP request, by handler",
            ("handler", "method"),
        )
        self.http_overload_refusals = self.counter(
            "qrpay_http_overload_refusals",
            "Requests answered 503 overloaded without running, over max_in_flight",
        )
        self.rate_limited = self.counter(
            "qrpay_rate_limited",
            "Requests answered 429 by a rate limit of this instance, by limit",
            ("limit",),
        )
        self.downstream_requests = self.counter(
            "qrpay_downstream_requests",
            "Calls to other services, by outcome",
            ("downstream", "endpoint", "outcome"),
        )
        self.downstream_latency = self.histogram(
            "qrpay_downstream_request_seconds",
            "Time of one call to another service",
            ("downstream", "endpoint"),
        )
        self.service_ticket_refusals = self.counter(
            "qrpay_service_ticket_refusals",
            "Calls refused by the service-ticket check (kernel.callers): 401 for no valid "
            "ticket, 403 for a caller the route does not allow",
            ("route", "caller", "reason"),
        )

        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._flush_due = False

    def observe_request(self, handler: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency.

        Measured under `make bench-pos` (py-spy, 2026-12-01): with several workers every
        ``inc``/``observe`` is a locked write to the worker's mmap file, 6% of
        the POS service's CPU once its routes were lean. Requests are tallied here instead
        and added in one go (``flush``) within ``flush_seconds``, and before every scrape
        of this process.
        """
        tally = self._tallies.get((handler, method))
        if tally is None:
            tally = self._tallies[(handler, method)] = _Tally()
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        tally.total_seconds += seconds
        # The first bucket whose bound is >= seconds, as Histogram.observe picks it.
        tally.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)

    def flush(self) -> None:
        """Add the tallied requests to the request counter and latency histogram."""
        tallies, self._tallies, self._flush_due = self._tallies, {}, False
        for (handler, method), tally in tallies.items():
            for status, count in tally.statuses.items():
                self.http_requests.labels(handler, method, str(status)).inc(count)
            timer = self.http_latency.labels(handler, method)
            # Histogram has no call adding many observations: its own bucket and sum values
            # are added to (tests/unit/kernel/test_metrics.py compares with observe()).
            timer._sum.inc(tally.total_seconds)
            for bucket, count in zip(timer._buckets, tally.buckets, strict=True):
                if count:
                    bucket.inc(count)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
        """A latency histogram in seconds (``LATENCY_BUCKETS``)."""
        return Histogram(name, doc, list(labels), buckets=LATENCY_BUCKETS, registry=self.registry)

    def gauge(
        self,
        name: str,
        doc: str,
        labels: tuple[str, ...] = (),
        *,
        per_worker: bool = False,
        lowest: bool = False,
    ) -> Gauge:
        """A gauge; with several workers the exposition shows, over the live workers, the
        largest value (a value every worker reads alike, e.g. a count from the database),
        ``per_worker`` the sum (each worker counts its own, e.g. its connections) or
        ``lowest`` the smallest (each worker reaches its own, e.g. a time where the oldest
        matters)."""
        mode: Literal["livesum", "livemin", "livemax"] = (
            "livesum" if per_worker else "livemin" if lowest else "livemax"
        )
        return Gauge(name, doc, list(labels), registry=self.registry, multiprocess_mode=mode)

    def exposition(self) -> bytes:
        self.flush()
        if path := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several workers: add up what every worker process wrote.
            self._forget_dead_workers(path)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def _forget_dead_workers(self, path: str) -> None:
        """uvicorn restarts a killed worker without telling the metrics; its live gauges'
        file is found here, at the next scrape, and dropped."""
        for name in os.listdir(path):
            match = _LIVE_GAUGE_FILE.fullmatch(name)
            if match and not self.alive(int(match[1])):
                mark_process_dead(int(match[1]), path)


@dataclass(frozen=True)
class Metric:
    """A ``MetricSet`` field's metric: ``Annotated[Counter, counter(name, doc)]``."""

    kind: str
    name: str
    doc: str
    labels: tuple[str, ...] = ()


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Metric:
    return Metric("counter", name, doc, labels)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Metric:
    return Metric("gauge", name, doc, labels)


class MetricSet:
    """Base of a service's own metrics: a frozen dataclass of ``Annotated`` metric fields."""

    @classmethod
    def register(cls, metrics: ServiceMetrics) -> Self:
        """Register every field's metric once on the service's registry."""
        made = {}
        for name, hint in get_type_hints(cls, include_extras=True).items():
            spec = next(extra for extra in get_args(hint)[1:] if isinstance(extra, Metric))
            made[name] = getattr(metrics, spec.kind)(spec.name, spec.doc, spec.labels)
        return cls(**made)
