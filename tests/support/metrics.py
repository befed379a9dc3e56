"""Reading one sample out of a Prometheus exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``; None when there is none."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None
