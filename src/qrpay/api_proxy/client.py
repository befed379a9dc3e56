"""The forwarder to payments-eda: the guest's call, passed through with the user's headers.

Unlike a typed ``ServiceClient`` it keeps payments-eda's own answer — status,
body and ``X-Polling-Delay`` — so the page sees exactly what payments-eda said.
Deadlines, retries (reads only) and metrics are ``kernel.http_client``'s own; a
payments-eda that is down, or answers 5xx, becomes ``DependencyUnavailable`` (``NotSent``
where the call never reached it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qrpay.kernel.http_client import ServiceClient

POLLING_DELAY_HEADER = "X-Polling-Delay"
PASSED_BACK_HEADERS = (POLLING_DELAY_HEADER,)


@dataclass(frozen=True)
class Forwarded:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]


class PaymentsEdaForwarder(ServiceClient):
    downstream = "payments-eda"
    prefix = "/4.0/payments/v1/"

    async def forward(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]],
        body: bytes | None,
        headers: Mapping[str, str],
        idempotent: bool,
        timeout_ms: int | None = None,
    ) -> Forwarded:
        """``timeout_ms``: the call's whole wait, where it is not the dependency's timeout."""
        answer = await self.exchange(
            method,
            self.prefix + path,
            endpoint=f"{method.lower()}_{path}",
            idempotent=idempotent,
            body=body,
            params=list(params),
            headers={"Accept": "application/json", **headers},
            deadline_ms=timeout_ms,
            try_timeout_ms=timeout_ms,
        )
        return Forwarded(
            answer.status,
            answer.body,
            answer.headers.get("Content-Type", "application/json"),
            {name: answer.headers[name] for name in PASSED_BACK_HEADERS if name in answer.headers},
        )

    async def wait(
        self,
        path: str,
        *,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        wait_ms: int,
    ) -> Forwarded:
        """A status long-poll: payments-eda holds it up to ``wait_ms``, then answers within
        its usual timeout."""
        return await self.forward(
            "GET",
            path,
            params=params,
            body=None,
            headers=headers,
            idempotent=True,
            timeout_ms=wait_ms + self._dependency().timeout_ms,
        )
