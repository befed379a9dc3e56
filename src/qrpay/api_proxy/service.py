"""api-proxy's use cases: sign a guest in, forward their calls with the user's headers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from pydantic import TypeAdapter, ValidationError

from qrpay.api_proxy.client import POLLING_DELAY_HEADER, Forwarded, PaymentsEdaForwarder
from qrpay.api_proxy.domain import (
    REFUSED_AT_THE_DOOR,
    PayCall,
    Session,
    long_poll_wait_ms,
    new_session,
    pay_forward_timeout_ms,
    pay_route,
    payer_route,
    sign_session,
    unknown_outcome_message,
    verify_session,
)
from qrpay.iiko_integration.client import IikoIntegrationClient
from qrpay.iiko_integration.schemas import RestaurantItem
from qrpay.kernel.clock import Clock
from qrpay.kernel.errors import DependencyUnavailable, InvalidInput, NotFound, Unauthenticated
from qrpay.kernel.http import parked
from qrpay.kernel.http_client import NotSent
from qrpay.kernel.ratelimit import RateLimiter
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.payments_eda.schemas import (
    IDEMPOTENCY_TOKEN_HEADER,
    GuestStatus,
    IdempotencyToken,
    PaymentsCode,
    PaymentStatusResponse,
    ShareStatusResponse,
)

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

log = structlog.get_logger("qrpay.api_proxy")

YANDEX_UID_HEADER = "X-Yandex-UID"
PHONE_ID_HEADER = "X-YaTaxi-PhoneId"
LANGUAGE_HEADER = "X-Request-Language"

TOKEN = TypeAdapter(IdempotencyToken)

# The second demo guest: signed in, but with no saved cards.
SECOND_DEMO_USER = "guest-2"


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    cards: int


@dataclass(frozen=True)
class ProxyLimits:
    """This instance's rate limits (kernel.ratelimit): per user, per client address."""

    sign_in: RateLimiter
    pay: RateLimiter
    client_address: RateLimiter


class ApiProxyService:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig[QrpayConfig],
        clock: Clock,
        payments: PaymentsEdaForwarder,
        iiko: IikoIntegrationClient,
        limits: ProxyLimits,
        waits: PaymentsEdaForwarder | None = None,
    ) -> None:
        self._runtime = runtime
        self._clock = clock
        self._payments = payments
        # The guests' status long-polls (``wait_ms``); the same forwarder when none is apart.
        self._waits = waits or payments
        self._iiko = iiko
        self._limits = limits

    def limit_client(self, address: str | None) -> None:
        """Every request of one client address (the forwarded one only from a trusted proxy)."""
        if address:
            self._limits.client_address.check(address)

    # --- sessions ---------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        """The session secrets, the signing one first; empty when secdist has none."""
        return [s.get_secret_value() for s in self._runtime.secdist.session_secrets or ()]

    def demo_users(self) -> list[DemoUser]:
        """The users the development sign-in offers; NotFound where the config turns it off."""
        if not self._runtime.config.sessions.development_sign_in:
            raise NotFound("the development sign-in is off in this config", code="sign_in_disabled")
        demo = self._runtime.config.demo
        users = [DemoUser(demo.user_id, len(demo.cards))]
        if demo.user_id != SECOND_DEMO_USER:
            users.append(DemoUser(SECOND_DEMO_USER, 0))
        return users

    def sign_in(self, user_id: str) -> tuple[Session, str]:
        """A new session (and its cookie value) for one of the demo users."""
        if user_id not in {user.user_id for user in self.demo_users()}:
            raise InvalidInput(f"{user_id[:64]!r} is not a demo user", code="unknown_user")
        self._limits.sign_in.check(user_id)
        keys = self._secrets()
        if not keys:
            raise DependencyUnavailable(
                "sign-in is off: secdist has no session_secrets", code="sessions_not_configured"
            )
        # A fresh phone id per sign-in, as a new device would have.
        ttl = timedelta(seconds=self._runtime.config.sessions.ttl_seconds)
        session = new_session(user_id, f"phone-{secrets.token_hex(8)}", self._clock.now(), ttl)
        return session, sign_session(keys[0], session)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = verify_session(self._secrets(), token, self._clock.now())
        if session is None or session.is_revoked(self._runtime.config.sessions.revoked_before):
            return None
        return session

    # --- payments-eda -----------------------------------------------------------------------

    def authorize(self, method: str, path: str, session: Session | None) -> None:
        """404 for a route that is not the guest's; 401 for paying without a session."""
        needs_session = payer_route(method, path)
        if needs_session is None:
            raise NotFound(f"no such payer route: {method} {path[:64]}")
        if needs_session and session is None:
            raise Unauthenticated("sign in to pay", code="unauthorized")

    def limit_pay(self, session: Session | None) -> None:
        """Pay attempts of one user; call after ``authorize`` (a pay call has a session)."""
        if session is not None:
            self._limits.pay.check(session.user_id)

    async def forward_payments(
        self,
        method: str,
        path: str,
        *,
        session: Session | None,
        language: str,
        params: Sequence[tuple[str, str]],
        body: bytes | None,
        token: str | None = None,
    ) -> Forwarded:
        """payments-eda's answer; a pay (``token``: the guest's ``X-Idempotency-Token``)
        whose outcome is lost on the way is answered ``WAITING``, never 5xx."""
        self.authorize(method, path, session)
        # Built from the session only: whatever user headers the client sent are dropped.
        headers = {LANGUAGE_HEADER: language}
        if session is not None:
            headers[YANDEX_UID_HEADER] = session.user_id
            headers[PHONE_ID_HEADER] = session.phone_id
        if method.upper() != "POST":
            wait_ms = long_poll_wait_ms(params)
            if wait_ms:
                # Its own connections and bulkhead: waiting guests never starve the calls
                # that work, and hold no in-flight slot here either.
                with parked():
                    return await self._waits.wait(
                        path.strip("/"), params=params, headers=headers, wait_ms=wait_ms
                    )
            return await self._payments.forward(
                method.upper(),
                path.strip("/"),
                params=params,
                body=None,
                headers=headers,
                idempotent=True,
            )
        pay = self.pay_call(path, body, token)
        if pay.token is not None:
            headers[IDEMPOTENCY_TOKEN_HEADER] = pay.token
        try:
            return await self._payments.forward(
                "POST",
                path.strip("/"),
                params=params,
                body=body,
                headers=headers,
                idempotent=False,
                timeout_ms=pay_forward_timeout_ms(self._runtime.config.payments.pay_budget_ms),
            )
        except NotSent:
            raise  # nothing reached payments-eda: a 503 the guest may simply retry
        except DependencyUnavailable as exc:
            if refused_at_the_door(exc):
                raise
            log.warning(
                "pay_outcome_unknown",
                order_id=pay.order_id,
                payment_id=pay.payment_id,
                reason=exc.message,
            )
            return self._waiting(pay, language)

    def pay_call(self, path: str, body: bytes | None, token: str | None) -> PayCall:
        """The pay request's order and the guest's token, checked before anything is sent."""
        token_required = pay_route(path)
        if token_required is None:
            raise NotFound(f"no such payer route: POST {path[:64]}")
        if token is not None:
            try:
                token = TOKEN.validate_python(token)
            except ValidationError:
                raise InvalidInput(
                    f"{IDEMPOTENCY_TOKEN_HEADER} is 8..128 of [A-Za-z0-9_-]",
                    code="invalid_idempotency_token",
                ) from None
        elif token_required:
            raise InvalidInput(
                f"a share is paid with an {IDEMPOTENCY_TOKEN_HEADER} header",
                code=PaymentsCode.IDEMPOTENCY_TOKEN_REQUIRED,
            )
        return PayCall(order_id=order_id_of(body), token=token, share=token_required)

    def _waiting(self, pay: PayCall, language: str) -> Forwarded:
        message = unknown_outcome_message(language)
        answer: PaymentStatusResponse
        if pay.share and pay.payment_id is not None:
            answer = ShareStatusResponse(
                status=GuestStatus.WAITING,
                message=message,
                payment_id=pay.payment_id,
                share_id=pay.payment_id,
            )
        else:
            answer = PaymentStatusResponse(
                status=GuestStatus.WAITING, message=message, payment_id=pay.payment_id
            )
        delay = self._runtime.config.payments.polling_delay_seconds
        return Forwarded(
            200,
            orjson.dumps(answer.model_dump(mode="json")),
            "application/json",
            {POLLING_DELAY_HEADER: str(delay)},
        )

    # --- iiko-integration -------------------------------------------------------------------

    async def availability(self, *, nearest_zone: str, session: Session | None) -> bool:
        return await self._iiko.availability(
            nearest_zone=nearest_zone,
            uuid=session.user_id if session else "",
            phone_id=session.phone_id if session else "",
        )

    async def restaurants(
        self, *, nearest_zone: str, session: Session | None
    ) -> list[RestaurantItem]:
        return await self._iiko.restaurants(
            nearest_zone=nearest_zone,
            uuid=session.user_id if session else "",
            phone_id=session.phone_id if session else "",
        )


def order_id_of(body: bytes | None) -> str:
    """The order a pay body names; refused here when there is none (payments-eda would
    refuse such a body too, and a lost answer could not say which payment to follow)."""
    try:
        parsed: Any = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        parsed = None
    order_id = parsed.get("order_id") if isinstance(parsed, dict) else None
    if not isinstance(order_id, str) or not order_id:
        raise InvalidInput("the pay request names no order_id", code="invalid_request")
    return order_id


def refused_at_the_door(exc: DependencyUnavailable) -> bool:
    """Whether payments-eda's 5xx says it did nothing (its edge shed the request)."""
    failure = exc.details or {}
    try:
        code = orjson.loads(failure.get("body") or b"").get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return code in REFUSED_AT_THE_DOOR
