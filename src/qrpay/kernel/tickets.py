"""Service tickets: a short-lived signed token naming the calling service (issue 11).

In the spirit of Yandex TVM's service tickets, without a TVM daemon: every service
holds the same ``service_ticket_keys`` (secdist); the first key signs, every key
verifies, so a key is rotated by adding the new one first, waiting for every
process to take the file, then dropping the old one. A ticket is

    <src>.<issued_at>.<expires_at>.<key_id>.<hmac-sha256 hex>

with unix seconds, ``key_id`` the first hex digits of the key's SHA-256 (it picks the
verifying key, so checking a ticket is one HMAC whatever the number of keys), and
the HMAC over everything before it. It names the caller and nothing else: what a
caller may do is each route's declaration (``kernel.callers``).

Pure functions with the time given, plus the two per-process caches the hot path
needs: ``TicketSigner`` signs once and re-signs before expiry, ``TicketVerifier``
keeps the last verified tickets so a caller's repeated ticket costs a dict lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import Counter
from pydantic import SecretStr

from qrpay.kernel.errors import Forbidden

TICKET_HEADER = "X-Ya-Service-Ticket"
# The identity of the command-line tools and benchmarks (the guest CLI, `qrpay up`'s
# demo seeding): accepted only on routes that declare it and where the config allows it.
TOOLS_IDENTITY = "qrpay-tools"

# A ticket is valid this long; a signer re-signs when less than REFRESH_SECONDS are left,
# so a ticket on the wire always has minutes to live (a call, its retries, clock skew).
TTL_SECONDS = 600
REFRESH_SECONDS = 300
# Refused: tickets issued further in the future than this (clock skew between hosts),
# and tickets claiming to live longer than MAX_TTL_SECONDS (a key holder's long-lived one).
MAX_SKEW_SECONDS = 60
MAX_TTL_SECONDS = 3600

KEY_ID_LENGTH = 8
_SOURCE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_TICKET = re.compile(
    r"(?P<src>[a-z0-9][a-z0-9-]{0,63})\.(?P<issued>[0-9]{1,12})\.(?P<expires>[0-9]{1,12})"
    r"\.(?P<kid>[0-9a-f]{8})\.(?P<mac>[0-9a-f]{64})"
)


class TicketRefusal(StrEnum):
    """Why a ticket was not accepted: the ``reason`` label of the refusal counter."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class TicketInvalid(Exception):
    def __init__(self, reason: TicketRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ticket:
    source: str
    issued_at: int
    expires_at: int


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:KEY_ID_LENGTH]


def _mac(key: bytes, signed: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, several times faster than hmac.new().
    return hmac.digest(key, signed.encode("ascii"), "sha256").hex()


def sign(source: str, key: bytes, now: int, ttl: int = TTL_SECONDS) -> str:
    """A ticket for ``source`` issued at ``now`` (unix seconds), valid for ``ttl`` seconds."""
    if not _SOURCE.fullmatch(source):
        raise ValueError(f"not a service name: {source!r}")
    signed = f"{source}.{now}.{now + ttl}.{key_id(key)}"
    return f"{signed}.{_mac(key, signed)}"


def verify(ticket: str, keys: dict[str, bytes], now: int) -> Ticket:
    """The ticket's claims if one of ``keys`` (by key id) signed it and it is valid at ``now``."""
    match = _TICKET.fullmatch(ticket)
    if match is None:
        raise TicketInvalid(TicketRefusal.MALFORMED)
    key = keys.get(match["kid"])
    if key is None:
        raise TicketInvalid(TicketRefusal.UNKNOWN_KEY)
    signed = ticket[: match.start("mac") - 1]
    if not hmac.compare_digest(_mac(key, signed), match["mac"]):
        raise TicketInvalid(TicketRefusal.BAD_SIGNATURE)
    issued, expires = int(match["issued"]), int(match["expires"])
    if issued > now + MAX_SKEW_SECONDS or expires - issued > MAX_TTL_SECONDS:
        raise TicketInvalid(TicketRefusal.NOT_YET_VALID)
    if expires <= now:
        raise TicketInvalid(TicketRefusal.EXPIRED)
    return Ticket(match["src"], issued, expires)


class CallerCode(StrEnum):
    SERVICE_TICKET_INVALID = "service_ticket_invalid"
    SERVICE_NOT_ALLOWED = "service_not_allowed"


class Refusal(StrEnum):
    """Refusals of a valid ticket; an invalid one is counted by its ``TicketRefusal``."""

    NOT_ALLOWED = "not_allowed"
    NOT_OWNER = "not_owner"


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified calling service of a request (``kernel.callers``), for a check that
    needs the data: transactions' invoice owner."""

    service: str
    route: str
    refusals: Counter

    def require(self, owner: str, what: str) -> None:
        """Forbidden (counted) unless this caller is ``owner`` of ``what``."""
        if self.service != owner:
            self.refusals.labels(self.route, self.service, Refusal.NOT_OWNER).inc()
            raise Forbidden(
                f"{what} belongs to another service", code=CallerCode.SERVICE_NOT_ALLOWED
            )


Keys = Callable[[], Sequence[SecretStr]]
Now = Callable[[], float]


class _KeyRing:
    """The keys by id, rebuilt only when the secdist's key tuple changes (a reload)."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._seen: Sequence[SecretStr] | None = None
        self.by_id: dict[str, bytes] = {}
        self.signing: bytes = b""

    def current(self) -> _KeyRing:
        keys = self._keys()
        # By identity first: the secdist's tuple is the same object until a reload.
        if keys is not self._seen and keys != self._seen:
            raw = [key.get_secret_value().encode() for key in keys]
            self.by_id = {key_id(key): key for key in raw}
            self.signing = raw[0] if raw else b""
            self._seen = keys
        return self


class TicketSigner:
    """This process's ticket as ``source``: signed once, re-signed before it expires or
    when the signing key changes (a rotation taken by a reload)."""

    def __init__(self, source: str, keys: Keys, now: Now) -> None:
        self.source = source
        self._ring = _KeyRing(keys)
        self._now = now
        self._ticket = ""
        self._key = b""
        self._refresh_at = 0.0

    def ticket(self) -> str:
        ring = self._ring.current()
        now = self._now()
        if now >= self._refresh_at or ring.signing is not self._key:
            issued = int(now)
            self._ticket = sign(self.source, ring.signing, issued)
            self._key = ring.signing
            self._refresh_at = issued + TTL_SECONDS - REFRESH_SECONDS
        return self._ticket


class TicketVerifier:
    """Checks tickets against every current key; remembers the last verified ones.

    A process gets the same few tickets over and over (one per calling process, for
    minutes), so a verified ticket is kept until it expires (at most ``cache_size``, the
    oldest dropped first) and checked again by a dict lookup. A key dropped from secdist
    empties the cache: its tickets must stop working at once.
    """

    def __init__(self, keys: Keys, now: Now, *, cache_size: int = 1024) -> None:
        self._ring = _KeyRing(keys)
        self._now = now
        self._cache_size = cache_size
        self._verified: OrderedDict[str, Ticket] = OrderedDict()
        self._ring_keys: dict[str, bytes] | None = None

    def verify(self, ticket: str | None) -> Ticket:
        if not ticket:
            raise TicketInvalid(TicketRefusal.MISSING)
        ring = self._ring.current()
        if ring.by_id is not self._ring_keys:
            self._verified.clear()
            self._ring_keys = ring.by_id
        now = int(self._now())
        known = self._verified.get(ticket)
        if known is not None and known.expires_at > now:
            return known
        claims = verify(ticket, ring.by_id, now)
        self._verified[ticket] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return claims


def tools_ticket(keys: Sequence[SecretStr]) -> Callable[[], str]:
    """The tools' ticket (``TOOLS_IDENTITY``) signed with ``keys``, on the system clock."""
    return TicketSigner(TOOLS_IDENTITY, lambda: keys, time.time).ticket
