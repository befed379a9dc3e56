"""kernel.edge: forwarded headers believed only from trusted proxies, HSTS, private paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from qrpay.kernel.config import HttpConfig
from qrpay.kernel.edge import UNKNOWN_CLIENT
from qrpay.kernel.errors import RateLimited
from qrpay.kernel.http import create_app
from qrpay.kernel.metrics import ServiceMetrics

BALANCER = "10.0.0.7"
OUTSIDER = "203.0.113.9"
EXTERNAL = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "198.51.100.23",
    "X-Forwarded-Host": "pay.example.com",
}


class Live:
    """The http section a test can replace, as a config reload does."""

    def __init__(self, **values: Any) -> None:
        self.config = HttpConfig(**values)

    def __call__(self) -> HttpConfig:
        return self.config


def app_for(live: Live, *, public: bool = False) -> FastAPI:
    app = create_app(
        service="demo",
        metrics=ServiceMetrics("demo"),
        max_body=lambda: 2048,
        http=live,
        public=public,
    )

    @app.get("/seen")
    async def seen(request: Request) -> dict[str, Any]:
        return {
            "scheme": request.url.scheme,
            "client": request.client.host if request.client else None,
            "host": request.headers.get("host"),
        }

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited("slow down", retry_after=7)

    return app


def client_from(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://svc.internal")


async def seen(app: FastAPI, peer: str, headers: dict[str, str]) -> httpx.Response:
    async with client_from(app, peer) as client:
        return await client.get("/seen", headers=headers)


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    app = app_for(Live(trusted_proxies=[BALANCER]))
    answer = await seen(app, OUTSIDER, EXTERNAL)
    assert answer.json() == {"scheme": "http", "client": OUTSIDER, "host": "svc.internal"}
    assert "strict-transport-security" not in answer.headers


async def test_nobody_is_trusted_by_default() -> None:
    answer = await seen(app_for(Live()), BALANCER, EXTERNAL)
    assert answer.json() == {"scheme": "http", "client": BALANCER, "host": "svc.internal"}


async def test_a_trusted_proxy_sets_scheme_client_and_host_and_https_gets_hsts() -> None:
    app = app_for(Live(trusted_proxies=["10.0.0.0/8"], hsts_max_age_seconds=600))
    answer = await seen(app, BALANCER, EXTERNAL)
    assert answer.json() == {
        "scheme": "https",
        "client": "198.51.100.23",
        "host": "pay.example.com",
    }
    assert answer.headers["strict-transport-security"] == "max-age=600"


async def test_the_client_is_the_nearest_address_that_is_not_a_proxy() -> None:
    app = app_for(Live(trusted_proxies=["10.0.0.0/8"]))
    # The client wrote the first entry itself; the balancers appended the rest.
    chain = {"X-Forwarded-For": "6.6.6.6, 198.51.100.23, 10.0.0.3"}
    assert (await seen(app, BALANCER, chain)).json()["client"] == "198.51.100.23"


async def test_the_standard_forwarded_header_is_read_too() -> None:
    app = app_for(Live(trusted_proxies=[BALANCER]))
    header = {"Forwarded": 'for="[2001:db8::17]:4711";proto=https;host=pay.example.com'}
    answer = await seen(app, BALANCER, header)
    assert answer.json() == {"scheme": "https", "client": "2001:db8::17", "host": "pay.example.com"}


async def test_a_clients_own_forwarded_header_never_outranks_the_balancers() -> None:
    # The balancer writes X-Forwarded-For; the client added a Forwarded header of its own.
    app = app_for(Live(trusted_proxies=[BALANCER, "127.0.0.1"]))
    for claim in ("for=127.0.0.1", "for=10.0.0.7", "for=127.0.0.1, for=127.0.0.1"):
        headers = {"X-Forwarded-For": OUTSIDER, "Forwarded": claim}
        assert (await seen(app, BALANCER, headers)).json()["client"] == OUTSIDER, claim
    # The other way round: a balancer that writes Forwarded, a client's X-Forwarded-For.
    headers = {"Forwarded": f"for={OUTSIDER}", "X-Forwarded-For": "127.0.0.1"}
    assert (await seen(app, BALANCER, headers)).json()["client"] == OUTSIDER


async def test_two_headers_naming_two_clients_name_nobody() -> None:
    # Which one the balancer wrote is unknown: neither is believed, and every such
    # request is the same unknown client (never internal, one rate-limit bucket).
    app = app_for(Live(trusted_proxies=[BALANCER]))
    for made_up in ("10.9.9.9", "10.9.9.10"):
        headers = {"X-Forwarded-For": OUTSIDER, "Forwarded": f"for={made_up}"}
        assert (await seen(app, BALANCER, headers)).json()["client"] == UNKNOWN_CLIENT[0]
    # Agreeing headers are one client.
    both = {"X-Forwarded-For": OUTSIDER, "Forwarded": f"for={OUTSIDER}"}
    assert (await seen(app, BALANCER, both)).json()["client"] == OUTSIDER


async def test_a_forwarded_scheme_or_host_does_not_outrank_the_x_forwarded_ones() -> None:
    app = app_for(Live(trusted_proxies=[BALANCER]))
    headers = {
        **EXTERNAL,
        "X-Forwarded-Proto": "http",
        "Forwarded": "proto=https;host=evil.example",
    }
    answer = (await seen(app, BALANCER, headers)).json()
    assert (answer["scheme"], answer["host"]) == ("http", "pay.example.com")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "gopher"},
        {"X-Forwarded-Host": "evil.example/with/path"},
        {"X-Forwarded-For": "not-an-address"},
    ],
)
async def test_nonsense_from_a_trusted_proxy_is_ignored(headers: dict[str, str]) -> None:
    answer = await seen(app_for(Live(trusted_proxies=[BALANCER])), BALANCER, headers)
    assert answer.json() == {"scheme": "http", "client": BALANCER, "host": "svc.internal"}


async def test_whom_to_trust_follows_the_live_config() -> None:
    live = Live()
    app = app_for(live)
    assert (await seen(app, BALANCER, EXTERNAL)).json()["scheme"] == "http"
    live.config = HttpConfig(trusted_proxies=[BALANCER])
    assert (await seen(app, BALANCER, EXTERNAL)).json()["scheme"] == "https"
    # Trust taken back is gone at once, whatever was remembered of the old list.
    live.config = HttpConfig(trusted_proxies=["10.9.0.0/16"])
    assert (await seen(app, BALANCER, EXTERNAL)).json()["scheme"] == "http"


async def test_no_hsts_over_plain_http_or_when_off() -> None:
    app = app_for(Live(trusted_proxies=[BALANCER], hsts_max_age_seconds=0))
    answer = await seen(app, BALANCER, EXTERNAL)
    assert answer.json()["scheme"] == "https"
    assert "strict-transport-security" not in answer.headers
    plain = await seen(app_for(Live()), OUTSIDER, {})
    assert "strict-transport-security" not in plain.headers


PRIVATE = ["/metrics", "/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", PRIVATE)
async def test_a_public_service_keeps_metrics_and_docs_for_internal_clients(path: str) -> None:
    app = app_for(Live(trusted_proxies=[BALANCER]), public=True)
    async with client_from(app, "127.0.0.1") as client:
        assert (await client.get(path)).status_code == 200
    async with client_from(app, OUTSIDER) as client:
        answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json() == {"code": "not_found", "message": "Not Found"}
    # Through the balancer the client is the forwarded address, not the balancer.
    async with client_from(app, BALANCER) as client:
        assert (await client.get(path, headers=EXTERNAL)).status_code == 404
        internal = {"X-Forwarded-For": "127.0.0.1"}
        assert (await client.get(path, headers=internal)).status_code == 200
        # The trick of issue 20: a client's own Forwarded beside the balancer's header.
        for claim in ("for=127.0.0.1", "for=10.0.0.7"):
            trick = {**EXTERNAL, "Forwarded": claim}
            assert (await client.get(path, headers=trick)).status_code == 404, claim


async def test_an_internal_service_serves_them_to_anyone_and_docs_can_be_off() -> None:
    live = Live()
    app = app_for(live)
    async with client_from(app, OUTSIDER) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
        live.config = HttpConfig(docs=False)
        assert [(await client.get(path)).status_code for path in PRIVATE] == [200, 404, 404, 404]


async def test_rate_limited_is_429_with_retry_after() -> None:
    async with client_from(app_for(Live()), OUTSIDER) as client:
        answer = await client.get("/limited")
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "7"
    assert answer.json() == {"code": "rate_limited", "message": "slow down"}
