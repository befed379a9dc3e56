"""What a request looks like from outside: the one place forwarded headers are believed.

Behind a TLS-terminating load balancer the app's peer is the balancer and the scheme
``http``. ``EdgeMiddleware`` takes the client's address, scheme and host from
``X-Forwarded-For``/``-Proto``/``-Host`` (or ``Forwarded``, RFC 7239) only when the peer is
one of ``http.trusted_proxies``; from anyone else they are ignored, as a client can send
them. Routes then see the external view (``request.url.scheme``, ``request.client``, the
``Host`` header): the session cookie is ``Secure`` and the Origin check compares with
``https://host`` behind the balancer.

uvicorn's ``--proxy-headers`` does the address and scheme part, but its trusted list is
fixed at start and it ignores the host; this reads the live config on every request, so
a reload changes whom it trusts.

It also sends ``Strict-Transport-Security`` on answers to https requests, and on a public
service (the one browsers reach) keeps ``/metrics`` and the API docs for ``http.internal_networks``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrpay.kernel.config import HttpConfig, Networks

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
PRIVATE_PATHS = DOCS_PATHS | {"/metrics"}
SCHEMES = frozenset({"http", "https"})
# A host name or address with an optional port; anything else in a forwarded host is ignored.
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
_NOT_FOUND = orjson.dumps({"code": "not_found", "message": "Not Found"})


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _contains_in(networks: Networks) -> Callable[[str], bool]:
    @functools.lru_cache(maxsize=4096)
    def contains(host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in networks)

    return contains


# ``host in networks`` remembered per host, per networks tuple (by identity: hashing the
# tuple costs as much as the check). Parsing an address is the dearest part of a request's
# header work; a reloaded config brings new tuples, and old ones are forgotten.
_MEMBERSHIP: dict[int, tuple[Networks, Callable[[str], bool]]] = {}


def _membership(networks: Networks) -> Callable[[str], bool]:
    found = _MEMBERSHIP.get(id(networks))
    if found is None or found[0] is not networks:
        if len(_MEMBERSHIP) >= 8:
            _MEMBERSHIP.clear()
        found = _MEMBERSHIP[id(networks)] = (networks, _contains_in(networks))
    return found[1]


def is_in(host: str | None, networks: Networks) -> bool:
    if not host or not networks:
        return False
    # Longer than any address: not one, and not worth a cache entry.
    return len(host) <= 45 and _membership(networks)(host)


def split_host_port(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5`` or ``::1`` as (host, port); port 0 if none."""
    value = value.strip().strip('"')
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else 0
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port) if port.isdigit() else 0
    return value, 0


def _forwarded_pairs(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: one dict per hop, first (farthest) hop first."""
    hops = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, text = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = text.strip().strip('"')
        hops.append(pairs)
    return hops


# The client of a request whose forwarded headers contradict each other: one of them was
# written by the client, and nothing says which. Never internal, and one rate-limit
# bucket for all such requests (a new made-up address per request gains nothing).
UNKNOWN_CLIENT = ("unknown", 0)


def _client_of(hops: list[str], trusted: Networks) -> tuple[tuple[str, int] | None, bool]:
    """(client, sure) from one header's hops: walking from the right, the hops our proxies
    appended, up to the first address that is not one of them (sure); if every hop is a
    proxy of ours, the first (not sure: a client may have written it). (None, False) when
    the header names no address."""
    chain = [split_host_port(hop) for hop in hops if hop.strip()]
    for host, port in reversed(chain):
        if not is_in(host, trusted):
            return ((host, port) if _address(host) else None), True
    return (chain[0] if chain else None), False


def _believed_client(headers: list[list[str]], trusted: Networks) -> tuple[str, int] | None:
    """The client over every forwarded header together. A header the balancer does not
    write is the client's own, and may name anything: where two headers name different
    clients with the same confidence the client is ``UNKNOWN_CLIENT``, never the one
    that would open more; a sure answer outranks one that names only our proxies."""
    found = [_client_of(hops, trusted) for hops in headers if hops]
    for sure in (True, False):
        named = {client[0] for client, certain in found if client and certain is sure}
        clients = [client for client, certain in found if client and certain is sure]
        if len(named) > 1:
            return UNKNOWN_CLIENT
        if clients:
            return clients[-1]
        if sure and any(certain for _, certain in found):
            return None  # nonsense where an address belongs: believe nothing
    return None


def external_view(
    headers: list[tuple[bytes, bytes]], trusted: Networks
) -> tuple[str | None, tuple[str, int] | None, str | None]:
    """(scheme, client, host) the trusted proxy in front reported; None where it said nothing.

    The client is read from ``Forwarded`` and ``X-Forwarded-For`` together
    (``_believed_client``); the scheme and host from ``X-Forwarded-Proto``/``-Host``, or
    else the last ``Forwarded`` element, the one the proxy next to us wrote.
    """
    forwarded: list[str] = []
    x_hops: list[str] = []
    proto = host = None
    for key, raw in headers:
        if key == b"forwarded":
            forwarded.append(raw.decode("latin-1"))
        elif key == b"x-forwarded-for":
            x_hops.extend(raw.decode("latin-1").split(","))
        elif key == b"x-forwarded-proto":
            proto = raw.decode("latin-1")
        elif key == b"x-forwarded-host":
            host = raw.decode("latin-1")
    hops: list[str] = []
    if forwarded:
        parsed = _forwarded_pairs(",".join(forwarded))
        hops = [hop["for"] for hop in parsed if "for" in hop]
        proto = proto or parsed[-1].get("proto")
        host = host or parsed[-1].get("host")
    # A list is read from its last entry, the one the proxy next to us wrote.
    scheme = proto.rsplit(",", 1)[-1].strip().lower() if proto else None
    host = host.rsplit(",", 1)[-1].strip() if host else None
    return (
        scheme if scheme in SCHEMES else None,
        _believed_client([x_hops, hops], trusted),
        host if host and _HOST.fullmatch(host) else None,
    )


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, http: Callable[[], HttpConfig], public: bool) -> None:
        self.app = app
        self.http = http
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.http()
        peer = scope.get("client")
        if config.trusted_proxies and peer and is_in(peer[0], config.trusted_proxies):
            self._believe(scope, config.trusted_proxies)
        path = scope["path"]
        if path in PRIVATE_PATHS and not self._may_see(path, scope, config):
            await self._not_found(send)
            return
        if scope.get("scheme") == "https" and config.hsts_max_age_seconds:
            hsts = (
                b"strict-transport-security",
                f"max-age={config.hsts_max_age_seconds}".encode(),
            )

            async def send_hsts(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), hsts]
                await send(message)

            await self.app(scope, receive, send_hsts)
            return
        await self.app(scope, receive, send)

    def _believe(self, scope: Scope, trusted: Networks) -> None:
        scheme, client, host = external_view(scope["headers"], trusted)
        if scheme is not None:
            scope["scheme"] = scheme
        if client is not None:
            scope["client"] = client
        if host is not None:
            scope["headers"] = [
                *((key, value) for key, value in scope["headers"] if key != b"host"),
                (b"host", host.encode("latin-1")),
            ]

    def _may_see(self, path: str, scope: Scope, config: HttpConfig) -> bool:
        if path in DOCS_PATHS and not config.docs:
            return False
        if not self.public:
            return True
        client = scope.get("client")
        return client is not None and is_in(client[0], config.internal_networks)

    async def _not_found(self, send: Send) -> None:
        # The same answer as any unknown path: nothing tells that something is here.
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_NOT_FOUND)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _NOT_FOUND})
