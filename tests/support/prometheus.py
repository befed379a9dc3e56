"""Debian's Prometheus for tests: ``promtool`` on deploy/prometheus's rules, and a real
server on loopback scraping running qrpay processes with those rules loaded.

Skipped without the binaries, unless QRPAY_REQUIRE_PROMETHEUS=1 (CI installs Debian's
``prometheus`` package), where a missing binary fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import free_port, kill_group, start, terminate, wait_for_http

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = (PROMETHEUS_DIR / "alerts.yml", PROMETHEUS_DIR / "recording.yml")


def binary(name: str) -> str:
    """The path of Debian's ``promtool`` or ``prometheus``; skip (or fail in CI) without it."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    if found is None:
        reason = f"{name} is not installed (Debian package prometheus)"
        if os.environ.get("QRPAY_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"QRPAY_REQUIRE_PROMETHEUS=1 but {reason}")
        pytest.skip(reason)
    return found


def alert_names() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
        return answer.json()["data"]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def targets_up(self) -> dict[str, str]:
        """Each active target's scrape URL and health (up, down, unknown)."""
        return {
            target["scrapeUrl"]: target["health"] for target in self.api("targets")["activeTargets"]
        }

    def wait_for(
        self, what: str, condition: Callable[[], object], *, timeout: float = 120.0
    ) -> None:
        """Poll ``condition`` until it holds; fail with what Prometheus saw at the deadline."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not within {timeout}s; alerts {self.alerts()}, "
                    f"targets {self.targets_up()}\n{self.log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.5)


@contextmanager
def running_prometheus(
    tmp: Path, targets: dict[str, list[str]], *, interval: str = "1s"
) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port, scraping ``targets`` (job -> host:port list) and
    evaluating deploy/prometheus's rules every ``interval``; its data in ``tmp``."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": hosts}]}
            for job, hosts in targets.items()
        ],
    }
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "prometheus.log"
    process = start(
        [
            binary("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=log,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http([f"{url}/-/ready"], timeout=60, process=process, log=log)
        yield Prometheus(url, process, log)
    finally:
        terminate(process)
        kill_group(process)
