"""Service tickets: a short-lived token one service signs for one other (issues 11, 20).

In the spirit of Yandex TVM's service tickets, without a TVM daemon: each service signs
with its own Ed25519 private key, and a service holds only its own private key(s) and the
public keys of its callers (secdist ``ticket_keys``, ``kernel.config.TicketKeys``). So no
service can sign as another with what it holds, and a ticket names its destination, so
one sent to one service is no good at another. A ticket is

    <src>.<dst>.<issued_at>.<expires_at>.<key_id>.<Ed25519 signature, base64url>

with unix seconds, ``key_id`` the first hex digits of the SHA-256 of the signing key's
public half (it picks the verifying key among the source's), and the signature over
everything before it. Rotation: a source's new key goes first among its private keys
(it signs from then on) once its public half is among every destination's public keys,
where the old public key stays until the old tickets have expired (``TTL_SECONDS``).

What a caller may do is each route's declaration (``kernel.callers``). Pure functions
with the time given, plus the two per-process caches the hot path needs:
``TicketSigner`` signs once per destination and re-signs before expiry,
``TicketVerifier`` keeps the last verified tickets so a caller's repeated ticket costs
a dict lookup (a signature check is ~0.1 ms of CPU; a lookup ~1 µs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import Counter
from pydantic import SecretStr

from qrpay.kernel.errors import Forbidden

TICKET_HEADER = "X-Ya-Service-Ticket"
# The identity of the command-line tools and benchmarks (the guest CLI, `qrpay up`'s
# demo seeding): accepted only on routes that declare it and where the config allows it.
TOOLS_IDENTITY = "qrpay-tools"
# The identity of the on-call engineer's support tools (`qrpay support ...`, issue 19): a
# caller with a key of its own in secdist like a service's, named by the routes it may
# call (``allow("support")``), in production too.
SUPPORT_IDENTITY = "support"

# A ticket is valid this long; a signer re-signs when less than REFRESH_SECONDS are left,
# so a ticket on the wire always has minutes to live (a call, its retries, clock skew).
TTL_SECONDS = 600
REFRESH_SECONDS = 300
# Refused: tickets issued further in the future than this (clock skew between hosts),
# and tickets claiming to live longer than MAX_TTL_SECONDS (a key holder's long-lived one).
MAX_SKEW_SECONDS = 60
MAX_TTL_SECONDS = 3600

KEY_ID_LENGTH = 8
# An Ed25519 key (private seed or public key) is 32 bytes: 43 base64url characters.
KEY_BYTES = 32
_NAME = r"[a-z0-9][a-z0-9-]{0,63}"
_SOURCE = re.compile(_NAME)
_TICKET = re.compile(
    rf"(?P<src>{_NAME})\.(?P<dst>{_NAME})\.(?P<issued>[0-9]{{1,12}})\.(?P<expires>[0-9]{{1,12}})"
    r"\.(?P<kid>[0-9a-f]{8})\.(?P<sig>[A-Za-z0-9_-]{86})"
)


class TicketRefusal(StrEnum):
    """Why a ticket was not accepted: the ``reason`` label of the refusal counter."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_DESTINATION = "wrong_destination"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class TicketInvalid(Exception):
    def __init__(self, reason: TicketRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ticket:
    source: str
    destination: str
    issued_at: int
    expires_at: int


# -- keys ---------------------------------------------------------------------------------


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_key(text: str) -> bytes:
    """The 32 bytes of a base64url key; ValueError (naming no value) otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"not {KEY_BYTES} bytes")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(decode_key(text))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(decode_key(text))


def public_half(private: str) -> str:
    """The public key (base64url) of a private key (base64url)."""
    raw = private_key(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_key(raw)


def new_private_key() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return encode_key(raw)


def key_id(public: str) -> str:
    """A public key's id: what a ticket names to pick its verifying key."""
    return hashlib.sha256(decode_key(public)).hexdigest()[:KEY_ID_LENGTH]


# -- signing and verifying ----------------------------------------------------------------


def sign(source: str, destination: str, private: str, now: int, ttl: int = TTL_SECONDS) -> str:
    """A ticket from ``source`` to ``destination`` issued at ``now`` (unix seconds), valid
    for ``ttl`` seconds, signed with ``private`` (base64url Ed25519 private key)."""
    for name in (source, destination):
        if not _SOURCE.fullmatch(name):
            raise ValueError(f"not a service name: {name!r}")
    signed = f"{source}.{destination}.{now}.{now + ttl}.{key_id(public_half(private))}"
    signature = private_key(private).sign(signed.encode("ascii"))
    return f"{signed}.{encode_key(signature)}"


# Verifying keys: by source, by key id.
PublicKeys = Mapping[str, Mapping[str, Ed25519PublicKey]]


def verify(ticket: str, destination: str, keys: PublicKeys, now: int) -> Ticket:
    """The ticket's claims if it was signed by its source's key among ``keys``, names
    ``destination`` and is valid at ``now``; TicketInvalid with the reason otherwise."""
    match = _TICKET.fullmatch(ticket)
    if match is None:
        raise TicketInvalid(TicketRefusal.MALFORMED)
    key = keys.get(match["src"], {}).get(match["kid"])
    if key is None:
        raise TicketInvalid(TicketRefusal.UNKNOWN_KEY)
    signed = ticket[: match.start("sig") - 1]
    try:
        key.verify(base64.urlsafe_b64decode(match["sig"] + "=="), signed.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError):
        raise TicketInvalid(TicketRefusal.BAD_SIGNATURE) from None
    if match["dst"] != destination:
        raise TicketInvalid(TicketRefusal.WRONG_DESTINATION)
    issued, expires = int(match["issued"]), int(match["expires"])
    if issued > now + MAX_SKEW_SECONDS or expires - issued > MAX_TTL_SECONDS:
        raise TicketInvalid(TicketRefusal.NOT_YET_VALID)
    if expires <= now:
        raise TicketInvalid(TicketRefusal.EXPIRED)
    return Ticket(match["src"], match["dst"], issued, expires)


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
    needs the data: whether the caller owns the record it asks for."""

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


# A service's private keys (the first signs) and its callers' public keys, by service:
# what secdist ``ticket_keys`` holds (kernel.config.TicketKeys).
PrivateKeys = Callable[[], Sequence[SecretStr]]
PublicKeyTexts = Callable[[], Mapping[str, Sequence[str]]]
Now = Callable[[], float]


class TicketSigner:
    """This process's tickets as ``source``: one per destination, signed once and re-signed
    before it expires or when the signing key changes (a rotation taken by a reload)."""

    def __init__(self, source: str, keys: PrivateKeys, now: Now) -> None:
        self.source = source
        self._keys = keys
        self._now = now
        self._seen: Sequence[SecretStr] | None = None
        self._signing = ""
        # destination -> (ticket, when to re-sign it)
        self._tickets: dict[str, tuple[str, float]] = {}

    def ticket(self, destination: str) -> str:
        keys = self._keys()
        # By identity first: the secdist's tuple is the same object until a reload.
        if keys is not self._seen:
            signing = keys[0].get_secret_value() if keys else ""
            if signing != self._signing:
                self._tickets.clear()
            self._signing, self._seen = signing, keys
        now = self._now()
        known = self._tickets.get(destination)
        if known is not None and now < known[1]:
            return known[0]
        if not self._signing:
            raise TicketInvalid(TicketRefusal.UNKNOWN_KEY)  # secdist holds no key for us
        issued = int(now)
        ticket = sign(self.source, destination, self._signing, issued)
        self._tickets[destination] = (ticket, issued + TTL_SECONDS - REFRESH_SECONDS)
        return ticket

    def for_destination(self, destination: str) -> Callable[[], str]:
        """``ticket`` bound to one destination: a client that calls only that service."""
        return lambda: self.ticket(destination)


class TicketVerifier:
    """Checks tickets meant for ``destination`` against its callers' current public keys;
    remembers the last verified ones.

    A process gets the same few tickets over and over (one per calling process, for
    minutes), so a verified ticket is kept until it expires (at most ``cache_size``, the
    oldest dropped first) and checked again by a dict lookup. A change of the public keys
    (a reload) empties the cache: a dropped key's tickets must stop working at once.
    """

    def __init__(
        self, destination: str, keys: PublicKeyTexts, now: Now, *, cache_size: int = 1024
    ) -> None:
        self.destination = destination
        self._keys = keys
        self._now = now
        self._cache_size = cache_size
        self._seen: Mapping[str, Sequence[str]] | None = None
        self._ring: dict[str, dict[str, Ed25519PublicKey]] = {}
        self._verified: OrderedDict[str, Ticket] = OrderedDict()

    def _current(self) -> PublicKeys:
        keys = self._keys()
        if keys is not self._seen:
            self._ring = {
                source: {key_id(text): public_key(text) for text in texts}
                for source, texts in keys.items()
            }
            self._verified.clear()
            self._seen = keys
        return self._ring

    def verify(self, ticket: str | None) -> Ticket:
        if not ticket:
            raise TicketInvalid(TicketRefusal.MISSING)
        ring = self._current()
        now = int(self._now())
        known = self._verified.get(ticket)
        if known is not None and known.expires_at > now:
            return known
        claims = verify(ticket, self.destination, ring, now)
        self._verified[ticket] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return claims


def tools_signer(keys: Sequence[SecretStr]) -> TicketSigner:
    """The tools' tickets (``TOOLS_IDENTITY``) signed with ``keys``, on the system clock."""
    return TicketSigner(TOOLS_IDENTITY, lambda: keys, time.time)
