"""Development sign-in: the demo users, the session cookie, safe redirects, sign-out, the pages."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from qrpay.kernel.clock import FrozenClock
from qrpay.runner.config import QrpayConfig
from tests.support.component.api_proxy import Started, sign_in
from tests.support.services import dev_secdist


async def whoami(client: httpx.AsyncClient) -> str | None:
    answer = await client.get("/4.0/go-pay/v1/session")
    assert answer.status_code == 200
    user: str | None = answer.json()["user_id"]
    return user


async def test_the_login_page_lists_the_demo_users(proxy: httpx.AsyncClient) -> None:
    answer = await proxy.get(
        "/login",
        params={"next": "/go-pay/orders?order_id=1&hmac=2"},
        headers={"Accept-Language": "en"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in answer.text
    assert 'value="demo-user"' in answer.text
    assert 'value="guest-2"' in answer.text
    assert 'value="/go-pay/orders?order_id=1&amp;hmac=2"' in answer.text


async def test_sign_in_sets_a_signed_httponly_lax_cookie_and_redirects(
    proxy: httpx.AsyncClient,
) -> None:
    answer = await proxy.post(
        "/login",
        data={"user_id": "demo-user", "next": "/go-pay/orders?order_id=ord-1&hmac=ab"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/go-pay/orders?order_id=ord-1&hmac=ab"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("qrpay_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Max-Age=604800" in cookie
    assert "Path=/" in cookie
    assert await whoami(proxy) == "demo-user"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:x"]
)
async def test_sign_in_never_redirects_off_site(proxy: httpx.AsyncClient, next_url: str) -> None:
    answer = await proxy.post("/login", data={"user_id": "guest-2", "next": next_url})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/go-pay/restaurants"


async def test_only_demo_users_can_sign_in(proxy: httpx.AsyncClient) -> None:
    answer = await proxy.post("/login", data={"user_id": "admin", "next": "/"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "unknown_user"
    assert "set-cookie" not in answer.headers


async def test_sign_in_wants_a_form(proxy: httpx.AsyncClient) -> None:
    answer = await proxy.post("/login", json={"user_id": "demo-user"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_form"


async def test_a_cross_site_sign_in_is_refused(proxy: httpx.AsyncClient) -> None:
    answer = await proxy.post(
        "/login",
        data={"user_id": "demo-user", "next": "/"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    same = await proxy.post(
        "/login",
        data={"user_id": "demo-user", "next": "/"},
        headers={"Origin": "http://testserver"},
    )
    assert same.status_code == 303


async def test_sign_out_clears_the_session(proxy: httpx.AsyncClient) -> None:
    await sign_in(proxy)
    assert await whoami(proxy) == "demo-user"
    answer = await proxy.post("/logout", data={"next": "/go-pay/orders?order_id=1&hmac=2"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/go-pay/orders?order_id=1&hmac=2"
    assert 'qrpay_session=""' in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert await whoami(proxy) is None


async def test_the_session_expires_after_a_week(
    proxy: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    await sign_in(proxy)
    frozen_clock.advance(timedelta(days=6, hours=23))
    assert await whoami(proxy) == "demo-user"
    frozen_clock.advance(timedelta(hours=1))
    assert await whoami(proxy) is None


async def test_without_a_session_secret_there_is_no_sign_in(
    start_proxy: Started, proxy_config: QrpayConfig
) -> None:
    async with start_proxy(proxy_config, secdist=dev_secdist(session_secrets=None)) as proxy:
        answer = await proxy.post("/login", data={"user_id": "demo-user", "next": "/"})
        assert answer.status_code == 503
        assert answer.json()["code"] == "sessions_not_configured"
        assert await whoami(proxy) is None


@pytest.mark.parametrize("path", ["/go-pay/orders?order_id=1&hmac=2", "/go-pay/restaurants"])
async def test_pages_are_served_with_the_language_the_user_and_safe_headers(
    proxy: httpx.AsyncClient, path: str
) -> None:
    anonymous = await proxy.get(path, headers={"X-Request-Language": "en"})
    assert anonymous.status_code == 200
    assert '<html lang="en">' in anonymous.text
    assert 'data-user=""' in anonymous.text
    assert anonymous.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in anonymous.headers["content-security-policy"]
    assert anonymous.headers["cache-control"] == "no-store"
    await sign_in(proxy)
    signed_in = await proxy.get(path, headers={"Accept-Language": "ru-RU"})
    assert '<html lang="ru">' in signed_in.text
    assert 'data-user="demo-user"' in signed_in.text


async def test_static_assets_are_served(proxy: httpx.AsyncClient) -> None:
    for asset in ("app.css", "common.js", "pay.js", "restaurants.js"):
        answer = await proxy.get(f"/go-pay/static/{asset}")
        assert answer.status_code == 200, asset
    assert (await proxy.get("/go-pay/static/../app.py")).status_code == 404
