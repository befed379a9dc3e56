"""api-proxy behind a TLS-terminating balancer, its private paths, and its rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG, Settings
from qrpay.runner.config import QrpayConfig, parse_config, runtime_from_files
from qrpay.runner.context import build_app
from tests.support.mockserver import MockServer
from tests.support.services import make_context

BALANCER = "10.0.0.7"
GUEST = "198.51.100.23"
SITE = "pay.example.com"
BEHIND_TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": GUEST, "X-Forwarded-Host": SITE}
LOGIN = {"user_id": "demo-user", "next": "/go-pay/orders"}
PAY = {
    "service": "restaurant",
    "order_id": "ord-1",
    "hmac": "ab" * 32,
    "payment_method": {"type": "card", "id": "card-ok"},
    "amount": "100",
}

Clients = Callable[[str], httpx.AsyncClient]


def configured(config: QrpayConfig, **sections: dict[str, Any]) -> QrpayConfig:
    data = config.model_dump(mode="json")
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return parse_config(data)


@asynccontextmanager
async def serving(ctx: ServiceContext) -> AsyncIterator[Clients]:
    """The app with its lifespan run; clients to it from a given peer address."""
    app = build_app(ctx)
    async with app.router.lifespan_context(app):

        def client_from(peer: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            return httpx.AsyncClient(transport=transport, base_url=f"http://{SITE}")

        yield client_from


@pytest.fixture
def start(
    tmp_path: Path, frozen_clock: FrozenClock, proxy_config: QrpayConfig
) -> Callable[..., Any]:
    def start(**sections: dict[str, Any]) -> Any:
        config = configured(proxy_config, **sections)
        return serving(make_context("api-proxy", tmp_path, config=config, clock=frozen_clock))

    return start


TRUSTING = {"trusted_proxies": [BALANCER], "hsts_max_age_seconds": 600}


async def test_behind_a_trusted_tls_balancer_sign_in_works_with_a_secure_cookie(
    start: Callable[..., Any],
) -> None:
    async with start(http=TRUSTING) as client_from, client_from(BALANCER) as balancer:
        # What a browser at https://pay.example.com sends through the balancer.
        headers = {**BEHIND_TLS, "Origin": f"https://{SITE}", "Host": "10.0.0.20:8080"}
        answer = await balancer.post("/login", data=LOGIN, headers=headers)
        assert answer.status_code == 303, answer.text
        cookie = answer.headers["set-cookie"]
        assert "; secure" in cookie.lower()
        assert "httponly" in cookie.lower()
        assert answer.headers["strict-transport-security"] == "max-age=600"
        page = await balancer.get("/go-pay/orders", headers=BEHIND_TLS)
        assert page.headers["strict-transport-security"] == "max-age=600"


async def test_the_same_headers_from_an_untrusted_peer_change_nothing(
    start: Callable[..., Any],
) -> None:
    async with start(http=TRUSTING) as client_from, client_from("192.0.2.50") as outsider:
        headers = {**BEHIND_TLS, "Origin": f"https://{SITE}"}
        answer = await outsider.post("/login", data=LOGIN, headers=headers)
        assert answer.status_code == 403
        assert answer.json()["code"] == "cross_site_request"
        assert "strict-transport-security" not in answer.headers
        # Over plain http the cookie is not Secure, and there is no HSTS.
        plain = await outsider.post("/login", data=LOGIN, headers={"Origin": f"http://{SITE}"})
        assert plain.status_code == 303
        assert "secure" not in plain.headers["set-cookie"].lower()
        assert "strict-transport-security" not in plain.headers


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/redoc", "/openapi.json"])
async def test_metrics_and_docs_are_not_public(start: Callable[..., Any], path: str) -> None:
    async with start(http=TRUSTING) as client_from:
        async with client_from("127.0.0.1") as local:
            assert (await local.get(path)).status_code == 200
        async with client_from(GUEST) as guest:
            assert (await guest.get(path)).status_code == 404
        async with client_from(BALANCER) as balancer:
            assert (await balancer.get(path, headers=BEHIND_TLS)).status_code == 404
    async with start(http={"docs": False}) as client_from, client_from("127.0.0.1") as local:
        assert (await local.get(path)).status_code == (200 if path == "/metrics" else 404)


def limited(**limits: dict[str, Any]) -> dict[str, Any]:
    return {name: {"per_second": 1, "burst": 2, **value} for name, value in limits.items()}


def rate_limited(answer: httpx.Response) -> bool:
    if answer.status_code != 429:
        return False
    assert answer.json()["code"] == "rate_limited"
    assert int(answer.headers["retry-after"]) >= 1
    return True


def refused(metrics: str, limit: str) -> float:
    line = f'qrpay_rate_limited_total{{limit="{limit}"}} '
    found = [float(row[len(line) :]) for row in metrics.splitlines() if row.startswith(line)]
    return sum(found)


async def test_each_client_address_has_its_own_limit(
    start: Callable[..., Any], frozen_clock: FrozenClock
) -> None:
    limits = limited(client_address={})
    async with start(limits=limits, http={"trusted_proxies": [BALANCER]}) as client_from:
        async with client_from(BALANCER) as balancer:
            one = {"X-Forwarded-For": GUEST}
            two = {"X-Forwarded-For": "198.51.100.24"}
            answers = [await balancer.get("/go-pay/orders", headers=one) for _ in range(3)]
            assert [rate_limited(a) for a in answers] == [False, False, True]
            assert answers[2].headers["retry-after"] == "1"
            # Another client behind the same balancer is counted apart.
            assert (await balancer.get("/go-pay/orders", headers=two)).status_code == 200
            frozen_clock.advance(1)
            assert (await balancer.get("/go-pay/orders", headers=one)).status_code == 200
        async with client_from("127.0.0.1") as local:
            assert refused((await local.get("/metrics")).text, "client_address") == 1


async def test_a_clients_own_forwarded_header_gets_no_bucket_of_its_own(
    start: Callable[..., Any],
) -> None:
    limits = limited(client_address={})
    async with (
        start(limits=limits, http={"trusted_proxies": [BALANCER]}) as client_from,
        client_from(BALANCER) as balancer,
    ):
        answers = [
            await balancer.get(
                "/go-pay/orders",
                headers={"X-Forwarded-For": GUEST, "Forwarded": f"for={claim}"},
            )
            for claim in ("127.0.0.1", "127.0.0.2", "127.0.0.3")
        ]
        # The balancer's word: one guest, one bucket, whatever the guest claims.
        assert [rate_limited(a) for a in answers] == [False, False, True]
        made_up = [
            await balancer.get("/go-pay/orders", headers={"Forwarded": f"for=10.9.9.{i}"})
            for i in range(3)
        ]
        # No X-Forwarded-For: the balancer wrote this Forwarded itself (three clients).
        assert [rate_limited(a) for a in made_up] == [False, False, False]


async def test_sign_in_and_pay_attempts_are_limited_per_user(
    start: Callable[..., Any], mockserver: MockServer, frozen_clock: FrozenClock
) -> None:
    mockserver.json_handler("/4.0/payments/v1/orders", {"status": "WAITING"}, method="POST")
    limits = limited(sign_in={"burst": 1}, pay={"per_second": 0.25})
    async with (
        start(limits=limits) as client_from,
        client_from(GUEST) as guest,
        client_from("192.0.2.1") as other,
    ):
        assert (await guest.post("/login", data=LOGIN)).status_code == 303
        assert rate_limited(await other.post("/login", data=LOGIN))  # the same user
        second = {"user_id": "guest-2", "next": "/"}
        assert (await other.post("/login", data=second)).status_code == 303
        pays = [await guest.post("/4.0/payments/v1/orders", json=PAY) for _ in range(3)]
        assert [rate_limited(a) for a in pays] == [False, False, True]
        assert pays[2].headers["retry-after"] == "4"  # one token at 0.25 per second
        # guest-2 pays on its own bucket.
        assert (await other.post("/4.0/payments/v1/orders", json=PAY)).status_code == 200
        frozen_clock.advance(4)
        assert (await guest.post("/4.0/payments/v1/orders", json=PAY)).status_code == 200


async def test_a_config_reload_changes_the_limit(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_DEV_CONFIG / "config.yaml").read_text())
    data["limits"]["client_address"] = {"per_second": 1, "burst": 1}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    runtime = runtime_from_files(path, REPO_DEV_CONFIG / "secdist.yaml")
    clock = FrozenClock()
    ctx = ServiceContext(
        name="api-proxy", settings=Settings(data_dir=tmp_path), runtime=runtime, clock=clock
    )
    async with serving(ctx) as client_from, client_from(GUEST) as guest:
        answers = [(await guest.get("/go-pay/orders")).status_code for _ in range(3)]
        assert answers == [200, 429, 429]
        data["limits"]["client_address"] = {"per_second": 1, "burst": 5}
        path.write_text(yaml.safe_dump(data, allow_unicode=True) + "\n# v2\n")
        assert runtime.check_now()
        clock.advance(10)
        answers = [(await guest.get("/go-pay/orders")).status_code for _ in range(6)]
        assert answers == [200] * 5 + [429]
