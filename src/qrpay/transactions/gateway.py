"""Payment gateways behind one interface, each answering with one normalized result.

Every call carries a deterministic idempotency key (``<invoice_id>:<operation_id>``,
and ``<invoice_id>:<operation_id>:<n>`` for the n-th try of a clear the gateway refused),
so a call retried after a timeout or a crash is the same call to the gateway.
An adapter raises ``GatewayUnavailable`` when it could not get an answer (network,
timeout, the gateway's own error): the outcome is UNKNOWN, the money may have moved.
``lookup`` asks the gateway what became of a key: its result, or None when the
gateway never saw it (then the call may be made again with the same key).
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from uuid import uuid4

from qrpay.transactions.config import GatewayConfig
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

    @abstractmethod
    async def refund(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult:
        """Give back ``amount`` of the money a cleared hold took (one of several refunds of it).

        ``reference`` is the hold's gateway reference: the provider's payment. It maps onto
        YooKassa's ``POST /v3/refunds`` (``{"payment_id": reference, "amount": {"value":
        amount, "currency": currency}}`` with the ``Idempotence-Key: idempotency_key`` header,
        the refund operation's own key) and onto Stripe's ``POST /v1/refunds`` (``payment_intent``
        = reference, ``amount`` in minor units, ``Idempotency-Key`` header). Their refund
        ``succeeded`` is SUCCEEDED; ``canceled`` (YooKassa) or ``failed``/``canceled`` (Stripe)
        is FAILED with the provider's reason; a ``pending`` refund, no answer or the
        provider's own error is ``GatewayUnavailable`` (unknown: ``lookup`` asks again by
        the key, as YooKassa's ``GET /v3/refunds/{id}`` or Stripe's refund list would).
        """

    @abstractmethod
    async def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The result the gateway has for this key, None if it never saw the key.

        Raises ``GatewayUnavailable`` when it cannot tell.
        """


OK_PREFIX = "sandbox-ok-"
INSUFFICIENT_PREFIX = "sandbox-insufficient-"
ERROR_PREFIX = "sandbox-error-"
# Carried out, but the first answer for each key is lost (a lookup finds it).
LOST_PREFIX = "sandbox-lost-"
# Carried out, but the answer comes after the caller's deadline.
LATE_PREFIX = "sandbox-late-"
# Holds succeed; every clear and unhold is refused for good.
STUCK_PREFIX = "sandbox-stuck-"
# Holds succeed; the first FLAKY_CLEAR_REFUSALS clears of each hold (each under its own
# key) are refused, the next one succeeds; unholds succeed.
FLAKY_CLEAR_PREFIX = "sandbox-flaky-clear-"
FLAKY_CLEAR_REFUSALS = 2
# Holds and clears succeed; every refund is refused for good.
FAILING_REFUND_PREFIX = "sandbox-failing-refund-"
FAILING_REFUND_REASON = "refund_refused"
# Holds and clears succeed; refunds are carried out, but the first answer for each refund
# key is lost (unknown outcome: a lookup finds it).
SLOW_REFUND_PREFIX = "sandbox-slow-refund-"
# The tokens whose holds succeed.
_HOLDING_PREFIXES = (
    OK_PREFIX,
    LOST_PREFIX,
    LATE_PREFIX,
    STUCK_PREFIX,
    FLAKY_CLEAR_PREFIX,
    FAILING_REFUND_PREFIX,
    SLOW_REFUND_PREFIX,
)

# How many results the sandbox remembers (oldest forgotten first): a bound, not a ledger.
SANDBOX_MEMORY = 100_000
# How many of its latest calls it keeps for tests to read (a long run would grow for ever).
SANDBOX_CALLS_KEPT = 10_000


class SandboxGateway(PaymentGateway):
    """A gateway whose outcome is decided by the card token's prefix.

    ``sandbox-ok-*`` holds, ``sandbox-insufficient-*`` and ``sandbox-declined-*`` are
    refused, ``sandbox-error-*`` (and any unknown token) gets no answer and is never
    carried out; ``sandbox-lost-*`` loses the first answer of each key and
    ``sandbox-late-*`` answers after the call deadline (both are carried out: a lookup
    finds the result); ``sandbox-stuck-*`` refuses every clear and unhold;
    ``sandbox-flaky-clear-*`` refuses the first ``FLAKY_CLEAR_REFUSALS`` clears of each hold
    (by its reference) and clears the next; ``sandbox-failing-refund-*`` refuses every
    refund and ``sandbox-slow-refund-*`` loses the first answer of each refund key (carried
    out: a lookup finds it), both holding and clearing. Clear, unhold and refund of a hold
    otherwise succeed. A key seen before returns its first result.
    ``lost_answer_rate`` loses that share of first answers whatever the token.
    """

    def __init__(
        self,
        config: Callable[[], GatewayConfig],
        *,
        memory: int = SANDBOX_MEMORY,
        calls_kept: int = SANDBOX_CALLS_KEPT,
    ) -> None:
        self._config = config
        self._memory = memory
        self._results: OrderedDict[str, GatewayResult] = OrderedDict()
        self._answered: set[str] = set()
        # Clears refused so far per hold reference, for ``sandbox-flaky-clear-*``.
        self._clear_refusals: OrderedDict[str, int] = OrderedDict()
        self._calls: deque[tuple[str, str]] = deque(maxlen=calls_kept)

    @property
    def calls(self) -> list[tuple[str, str]]:
        """The latest calls, (kind, idempotency key), oldest first; for tests."""
        return list(self._calls)

    async def _delay(self, seconds: float) -> None:
        if seconds:
            await asyncio.sleep(seconds)

    def _lose_answer(self, kind: str, token: str, key: str) -> bool:
        if key in self._answered:
            return False
        if token.startswith(LOST_PREFIX) or (
            kind == "refund" and token.startswith(SLOW_REFUND_PREFIX)
        ):
            return True
        rate = self._config().lost_answer_rate
        if not rate:
            return False
        # Deterministic per key, so a test run can be replayed.
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
        return digest < rate * 2**32

    def _refuse_flaky_clear(self, token: str, key: str, reference: str | None) -> None:
        """Decide a new ``sandbox-flaky-clear-*`` clear key up front, counted per hold: the
        first ``FLAKY_CLEAR_REFUSALS`` are refused (``_call`` then answers as remembered)."""
        if not token.startswith(FLAKY_CLEAR_PREFIX) or key in self._results:
            return
        hold = reference or token
        refused = self._clear_refusals.get(hold, 0)
        if refused >= FLAKY_CLEAR_REFUSALS:
            return
        self._clear_refusals[hold] = refused + 1
        while len(self._clear_refusals) > self._memory:
            self._clear_refusals.popitem(last=False)
        self._remember(key, GatewayResult(OperationStatus.FAILED, reason="processing_error"))

    def _outcome(self, kind: str, token: str) -> GatewayResult:
        if kind == "hold" and token.startswith(INSUFFICIENT_PREFIX):
            return GatewayResult(OperationStatus.FAILED, reason="insufficient_funds")
        if kind != "hold" and token.startswith(STUCK_PREFIX):
            return GatewayResult(OperationStatus.FAILED, reason="processing_error")
        if kind == "refund" and token.startswith(FAILING_REFUND_PREFIX):
            return GatewayResult(OperationStatus.FAILED, reason=FAILING_REFUND_REASON)
        if kind == "hold" and not token.startswith(_HOLDING_PREFIXES):
            # sandbox-declined-* and any other sandbox token that is not one that holds.
            return GatewayResult(OperationStatus.FAILED, reason="card_declined")
        return GatewayResult(OperationStatus.SUCCEEDED, reference=f"sbx-{uuid4().hex}")

    def _remember(self, key: str, result: GatewayResult) -> None:
        self._results[key] = result
        while len(self._results) > self._memory:
            old, _ = self._results.popitem(last=False)
            self._answered.discard(old)

    async def _call(self, kind: str, token: str, idempotency_key: str) -> GatewayResult:
        self._calls.append((kind, idempotency_key))
        config = self._config()
        await self._delay(config.latency_ms / 1000)
        if token.startswith(ERROR_PREFIX) or not token.startswith("sandbox-"):
            raise GatewayUnavailable(f"sandbox gateway error for {kind}")
        result = self._results.get(idempotency_key)
        if result is None:
            result = self._outcome(kind, token)
            self._remember(idempotency_key, result)
        if self._lose_answer(kind, token, idempotency_key):
            self._answered.add(idempotency_key)
            raise GatewayUnavailable(f"sandbox lost the answer to {kind}")
        if token.startswith(LATE_PREFIX) and idempotency_key not in self._answered:
            self._answered.add(idempotency_key)
            await self._delay(config.call_timeout_seconds + 1)
        self._answered.add(idempotency_key)
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
        self._refuse_flaky_clear(token, idempotency_key, reference)
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

    async def refund(
        self,
        token: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reference: str | None = None,
    ) -> GatewayResult:
        return await self._call("refund", token, idempotency_key)

    async def lookup(self, idempotency_key: str) -> GatewayResult | None:
        self._calls.append(("lookup", idempotency_key))
        await self._delay(self._config().latency_ms / 1000)
        return self._results.get(idempotency_key)


def build_gateway(config: Callable[[], GatewayConfig]) -> PaymentGateway:
    """The adapter for ``config().kind`` (read once, at start-up)."""
    kind = config().kind
    if kind == "sandbox":
        return SandboxGateway(config)
    raise ValueError(f"unknown payment gateway kind {kind!r}")  # pragma: no cover
