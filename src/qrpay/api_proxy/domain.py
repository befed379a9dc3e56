"""api-proxy's rules, with no framework and no I/O.

- the session cookie: ``<payload>.<signature>``, where the payload is
  ``user_id|phone_id|issued|expires`` (base64url, unix seconds) and the signature is
  HMAC-SHA256(secret, "qrpay-session-v2|" + payload) in hex; any of the configured
  secrets verifies (rotation), and a user's sessions issued before a configured moment
  are refused (revocation);
- which ``next`` URLs a sign-in may redirect to (same-site relative paths only);
- the guest's language (``X-Request-Language``, then ``Accept-Language``);
- which payer routes are forwarded to payments-eda, and which need a session;
- a pay request's outcome when payments-eda's answer is lost (issue 18): api-proxy waits
  payments-eda's whole pay budget and a margin, and a pay it may have sent answers
  ``WAITING`` (the payment the guest's token names), never 5xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from qrpay.payments_eda.schemas import (
    GUEST_MESSAGES,
    MessageKey,
    StatusWaitMs,
    payment_id_for,
)

SESSION_COOKIE = "qrpay_session"
SESSION_TTL = timedelta(days=7)
# v2 added the issue time, which revocation compares; a v1 cookie no longer verifies
# and its guest signs in again.
_SIGNING_CONTEXT = b"qrpay-session-v2|"
# User and phone ids: what cardstorage accepts as ids, and never a separator. Matched with
# ``fullmatch``: ``$`` would also match before a trailing newline.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_TOKEN_LENGTH = 1024

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"

DEFAULT_NEXT = "/go-pay/restaurants"
MAX_NEXT_LENGTH = 2048

# (method, path under /4.0/payments/v1/) -> whether a session is required.
# Anything else is not forwarded: payments-eda's other routes are not the guest's business.
PAYER_ROUTES: dict[tuple[str, str], bool] = {
    ("GET", "preorder"): False,
    ("GET", "orders"): False,
    ("POST", "orders"): True,
    # A split bill (issue 12): what is left and the shares, a share's price, paying a share
    # and polling it.
    ("GET", "orders/split"): False,
    ("GET", "orders/share/quote"): False,
    ("GET", "orders/share"): False,
    ("POST", "orders/share"): True,
}


@dataclass(frozen=True)
class Session:
    user_id: str
    phone_id: str
    issued_at: int  # unix seconds
    expires_at: int  # unix seconds

    def is_valid_at(self, now: datetime) -> bool:
        return now.timestamp() < self.expires_at

    def is_revoked(self, revoked_before: Mapping[str, datetime]) -> bool:
        cutoff = revoked_before.get(self.user_id)
        return cutoff is not None and self.issued_at < cutoff.timestamp()

    @property
    def lifetime_seconds(self) -> int:
        return self.expires_at - self.issued_at


def new_session(
    user_id: str, phone_id: str, now: datetime, ttl: timedelta = SESSION_TTL
) -> Session:
    if not ID_PATTERN.fullmatch(user_id) or not ID_PATTERN.fullmatch(phone_id):
        raise ValueError("user and phone ids are 1..128 of [A-Za-z0-9_.:-]")
    return Session(
        user_id=user_id,
        phone_id=phone_id,
        issued_at=int(now.timestamp()),
        expires_at=int((now + ttl).timestamp()),
    )


def _signature(secret: str, payload: str) -> str:
    return hmac.new(
        secret.encode(), _SIGNING_CONTEXT + payload.encode(), hashlib.sha256
    ).hexdigest()


def sign_session(secret: str, session: Session) -> str:
    raw = f"{session.user_id}|{session.phone_id}|{session.issued_at}|{session.expires_at}"
    raw_bytes = raw.encode()
    payload = base64.urlsafe_b64encode(raw_bytes).decode().rstrip("=")
    return f"{payload}.{_signature(secret, payload)}"


def verify_session(
    secrets: list[str] | tuple[str, ...], token: str | None, now: datetime
) -> Session | None:
    """The session in a cookie, or None when it is missing, malformed, forged or expired.

    Any of ``secrets`` may have signed it: during a rotation the new secret signs and the
    old one still verifies the cookies it signed.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    # Constant time: the comparison says nothing about how much of a forgery matched.
    if not any(
        hmac.compare_digest(_signature(secret, payload).encode(), signature.encode())
        for secret in secrets
    ):
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = raw.split("|")
    if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
        return None
    user_id, phone_id, issued, expires = parts
    if not ID_PATTERN.fullmatch(user_id) or not ID_PATTERN.fullmatch(phone_id):
        return None
    session = Session(
        user_id=user_id, phone_id=phone_id, issued_at=int(issued), expires_at=int(expires)
    )
    return session if session.is_valid_at(now) else None


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """``value`` when it is a path on this site, else ``default`` (no open redirects).

    Accepted: ``/path?query`` without scheme, host, backslashes, control characters or
    whitespace. ``//evil.example`` and ``/\\evil.example`` are hosts to a browser.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return default
    try:
        parts = urlsplit(value)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return value


def _primary(tag: str) -> str:
    return tag.strip().split("-")[0].split("_")[0].lower()


def choose_language(request_language: str | None, accept_language: str | None) -> str | None:
    """``ru`` or ``en``: the explicit header first, then the best ``Accept-Language`` match.

    None when neither names a language we speak (the page then asks the browser).
    """
    if request_language:
        primary = _primary(request_language)
        if primary in LANGUAGES:
            return primary
    if not accept_language:
        return None
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(accept_language.split(",")[:32]):
        tag, _, params = item.partition(";")
        primary = _primary(tag)
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if not 0 < quality <= 1:
            continue
        # Higher quality wins; among equals, the one listed first.
        candidate = (quality, -index, primary)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def payer_route(method: str, path: str) -> bool | None:
    """Whether forwarding ``method path`` needs a session; None when it is not forwarded."""
    return PAYER_ROUTES.get((method.upper(), path.strip("/")))


# The pay routes (POST under /4.0/payments/v1/) -> whether the guest's idempotency token is
# required: a share always; the whole bill keeps a seed-era client working without one.
PAY_ROUTES: dict[str, bool] = {"orders": False, "orders/share": True}

# api-proxy waits payments-eda's whole pay budget (``payments.pay_budget_ms``) and this much
# more before it reads a pay's outcome as unknown: payments-eda's work before its budget
# starts and after it ends (the accept queue, the body, the answer) and the network.
PAY_FORWARD_MARGIN_MS = 1000

# A pay whose outcome api-proxy does not know, in the guest's words: what payments-eda says
# of a payment in progress, and the page follows the payment to its end.
OUTCOME_UNKNOWN_MESSAGES = GUEST_MESSAGES[MessageKey.IN_PROGRESS]

# A 5xx of payments-eda's that says it did nothing: its edge refused the request at the
# door (``kernel.http``'s overload shedding), before any handler ran. Any other 5xx (a
# failure on the way) leaves the outcome unknown.
REFUSED_AT_THE_DOOR = frozenset({"overloaded"})


def pay_forward_timeout_ms(pay_budget_ms: int) -> int:
    """How long api-proxy waits for payments-eda's answer to a pay: never less than its
    whole budget, so api-proxy does not give up on a pay payments-eda is still making."""
    return pay_budget_ms + PAY_FORWARD_MARGIN_MS


_WAIT_MS: TypeAdapter[int] = TypeAdapter(StatusWaitMs)


def long_poll_wait_ms(params: Sequence[tuple[str, str]]) -> int:
    """The ``wait_ms`` of a status long-poll, read by payments-eda's own rule; 0 for a plain
    read, and for a value payments-eda refuses (it answers the 400 at once)."""
    for name, value in params:
        if name == "wait_ms":
            try:
                return _WAIT_MS.validate_python(value)
            except ValidationError:
                return 0
    return 0


def pay_route(path: str) -> bool | None:
    """Whether a pay on ``path`` needs the guest's token; None when ``path`` is no pay."""
    return PAY_ROUTES.get(path.strip("/"))


@dataclass(frozen=True)
class PayCall:
    """A pay request api-proxy forwards: what its answer names if the outcome is lost."""

    order_id: str
    token: str | None
    share: bool

    @property
    def payment_id(self) -> str | None:
        """The payment the token makes (payments-eda derives the same), None without one."""
        return payment_id_for(self.order_id, self.token) if self.token else None


def unknown_outcome_message(language: str) -> str:
    return OUTCOME_UNKNOWN_MESSAGES.get(language, OUTCOME_UNKNOWN_MESSAGES[DEFAULT_LANGUAGE])
