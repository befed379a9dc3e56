"""Payment gateways behind one interface, each answering with one normalized result.

Every call carries a deterministic idempotency key (``<invoice_id>:<operation_id>``),
so a call retried after a timeout or a crash is the same call to the gateway.
An adapter raises ``GatewayUnavailable`` when it could not get an answer (network,
timeout, the gateway's own error): the caller may retry with the same key.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from uuid import uuid4

from qrpay.kernel.config import GatewayConfig
from qrpay.transactions.schemas import OperationStatus


@dataclass(frozen=True, slots=True)
class GatewayResult:
    status: OperationStatus  # succeeded or failed, never pending
    reason: str | None = None
    reference: str | None = None


class GatewayUnavailable(Exception):
    """No answer from the gateway; the outcome is unknown and the call may be retried."""


class PaymentGateway(ABC):
    @abstractmethod
    async def hold(
        self, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    @abstractmethod
    async def clear(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult: ...

    @abstractmethod
    async def unhold(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult: ...


OK_PREFIX = "sandbox-ok-"
INSUFFICIENT_PREFIX = "sandbox-insufficient-"
ERROR_PREFIX = "sandbox-error-"


class SandboxGateway(PaymentGateway):
    """A gateway whose outcome is decided by the card token's prefix.

    ``sandbox-ok-*`` holds, ``sandbox-insufficient-*`` and ``sandbox-declined-*`` are
    refused, ``sandbox-error-*`` (and any unknown token) gets no answer. Clear and
    unhold of a hold succeed. A key seen before returns its first result.
    """

    def __init__(self, config: Callable[[], GatewayConfig]) -> None:
        self._config = config
        self._results: dict[str, GatewayResult] = {}
        self.calls: list[tuple[str, str]] = []  # (kind, idempotency key), for tests

    async def _delay(self) -> None:
        latency = self._config().latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)

    async def _call(self, kind: str, token: str, idempotency_key: str) -> GatewayResult:
        self.calls.append((kind, idempotency_key))
        await self._delay()
        known = self._results.get(idempotency_key)
        if known is not None:
            return known
        if token.startswith(ERROR_PREFIX) or not token.startswith("sandbox-"):
            raise GatewayUnavailable(f"sandbox gateway error for {kind}")
        if kind == "hold" and token.startswith(INSUFFICIENT_PREFIX):
            result = GatewayResult(OperationStatus.FAILED, reason="insufficient_funds")
        elif kind == "hold" and not token.startswith(OK_PREFIX):
            # sandbox-declined-* and any other sandbox token that is not sandbox-ok-*.
            result = GatewayResult(OperationStatus.FAILED, reason="card_declined")
        else:
            result = GatewayResult(OperationStatus.SUCCEEDED, reference=f"sbx-{uuid4().hex}")
        self._results[idempotency_key] = result
        return result

    async def hold(
        self, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayResult:
        return await self._call("hold", token, idempotency_key)

    async def clear(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult:
        return await self._call("clear", token, idempotency_key)

    async def unhold(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult:
        return await self._call("unhold", token, idempotency_key)


def build_gateway(config: Callable[[], GatewayConfig]) -> PaymentGateway:
    """The adapter for ``config().kind`` (read once, at start-up)."""
    kind = config().kind
    if kind == "sandbox":
        return SandboxGateway(config)
    raise ValueError(f"unknown payment gateway kind {kind!r}")  # pragma: no cover
