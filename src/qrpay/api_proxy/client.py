"""The forwarder to payments-eda: the guest's call, passed through with the user's headers.

Unlike a typed ``ServiceClient`` it keeps payments-eda's own answer — status,
body and ``X-Polling-Delay`` — so the page sees exactly what payments-eda said.
Deadlines, retries (reads only) and metrics follow ``kernel.http_client``; a
payments-eda that is down, or answers 5xx, becomes ``DependencyUnavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import DependencyUnavailable
from qrpay.kernel.http_client import RETRYABLE_STATUSES, HttpSession
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.kernel.request_context import REQUEST_ID_HEADER, current_request_id

log = structlog.get_logger("qrpay.api_proxy")

POLLING_DELAY_HEADER = "X-Polling-Delay"
PASSED_BACK_HEADERS = (POLLING_DELAY_HEADER,)


@dataclass(frozen=True)
class Forwarded:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]


class PaymentsEdaForwarder:
    downstream = "payments-eda"
    prefix = "/4.0/payments/v1/"

    def __init__(
        self,
        *,
        session: HttpSession,
        dependency: Callable[[], DependencyConfig],
        metrics: ServiceMetrics,
    ) -> None:
        self._session = session
        self._dependency = dependency
        self._metrics = metrics

    async def forward(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]],
        body: bytes | None,
        headers: Mapping[str, str],
        idempotent: bool,
    ) -> Forwarded:
        dependency = self._dependency()
        deadline = time.monotonic() + dependency.timeout_ms / 1000
        tries = 1 + (dependency.retries if idempotent else 0)
        request_headers = {"Accept": "application/json", **headers}
        if body is not None:
            request_headers["Content-Type"] = "application/json"
        request_id = current_request_id()
        if request_id:
            request_headers[REQUEST_ID_HEADER] = request_id
        url = dependency.base_url.rstrip("/") + self.prefix + path
        endpoint = f"{method.lower()}_{path}"
        last_reason = "no try was made"
        for attempt in range(tries):
            remaining = deadline - time.monotonic()
            if remaining <= 0.001:
                break
            started = time.perf_counter()
            outcome = "error"
            try:
                async with self._session.get().request(
                    method,
                    url,
                    params=list(params),
                    data=body,
                    headers=request_headers,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                    allow_redirects=False,
                ) as response:
                    raw = await response.read()
                    status = response.status
                    content_type = response.headers.get("Content-Type", "application/json")
                    passed = {
                        name: response.headers[name]
                        for name in PASSED_BACK_HEADERS
                        if name in response.headers
                    }
                outcome = str(status)
                if status not in RETRYABLE_STATUSES and status < 500:
                    return Forwarded(status, raw, content_type, passed)
                last_reason = f"{self.downstream} answered {status}"
            except TimeoutError:
                outcome = "timeout"
                last_reason = f"{self.downstream} did not answer in time"
            except (aiohttp.ClientError, OSError) as exc:
                outcome = "connection_error"
                last_reason = f"{self.downstream} unreachable: {type(exc).__name__}"
            finally:
                self._metrics.downstream_requests.labels(self.downstream, endpoint, outcome).inc()
                self._metrics.downstream_latency.labels(self.downstream, endpoint).observe(
                    time.perf_counter() - started
                )
            if attempt + 1 < tries:
                pause = dependency.retry_backoff_ms / 1000 * (2**attempt)
                if time.monotonic() + pause >= deadline:
                    break
                await asyncio.sleep(pause)
        log.warning(
            "downstream_failed", downstream=self.downstream, endpoint=endpoint, reason=last_reason
        )
        raise DependencyUnavailable(last_reason, code="payments_eda_unavailable")
