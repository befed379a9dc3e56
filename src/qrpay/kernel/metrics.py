"""Prometheus metrics, one registry per service so one process can host several."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Self, get_args, get_type_hints

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "qrpay_http_requests",
            "HTTP requests handled, by handler and status",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "qrpay_http_request_seconds",
            "Time to answer an HTTP request, by handler",
            ["handler", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_overload_refusals = Counter(
            "qrpay_http_overload_refusals",
            "Requests answered 503 overloaded without running, over max_in_flight",
            registry=self.registry,
        )
        self.downstream_requests = Counter(
            "qrpay_downstream_requests",
            "Calls to other services, by outcome",
            ["downstream", "endpoint", "outcome"],
            registry=self.registry,
        )
        self.downstream_latency = Histogram(
            "qrpay_downstream_request_seconds",
            "Time of one call to another service",
            ["downstream", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.service_ticket_refusals = Counter(
            "qrpay_service_ticket_refusals",
            "Calls refused by the service-ticket check (kernel.callers): 401 for no valid "
            "ticket, 403 for a caller the route does not allow",
            ["route", "caller", "reason"],
            registry=self.registry,
        )

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry, multiprocess_mode="livemax")

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several workers: add up what every worker process wrote.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


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
