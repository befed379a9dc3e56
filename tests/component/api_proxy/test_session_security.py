"""Sessions (issue 11): secret rotation, configured expiry, revocation, sign-in only where enabled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from qrpay.kernel.clock import FrozenClock, wire_time
from qrpay.runner.config import QrpayConfig, parse_config
from tests.support.component.api_proxy import Started, sign_in
from tests.support.services import dev_secdist

OLD = "old-session-secret-0123456789abcdef-old"
NEW = "new-session-secret-0123456789abcdef-new"


def with_sessions(config: QrpayConfig, **sessions: Any) -> QrpayConfig:
    data = config.model_dump(mode="json")
    data["sessions"] = {**data.get("sessions", {}), **sessions}
    return parse_config(data)


async def user_of(client: httpx.AsyncClient, cookie: str) -> str | None:
    answer = await client.get("/4.0/go-pay/v1/session", cookies={"qrpay_session": cookie})
    assert answer.status_code == 200
    user: str | None = answer.json()["user_id"]
    return user


async def signed_in_cookie(client: httpx.AsyncClient, user: str = "demo-user") -> str:
    await sign_in(client, user)
    cookie = client.cookies.get("qrpay_session")
    assert cookie
    client.cookies.clear()
    return cookie


async def test_the_first_secret_signs_and_every_secret_verifies(
    start_proxy: Started, proxy_config: QrpayConfig
) -> None:
    async with start_proxy(proxy_config, secdist=dev_secdist(session_secrets=[OLD])) as proxy:
        old_cookie = await signed_in_cookie(proxy)
    rotating = dev_secdist(session_secrets=[NEW, OLD])
    async with start_proxy(proxy_config, secdist=rotating) as proxy:
        assert await user_of(proxy, old_cookie) == "demo-user"
        new_cookie = await signed_in_cookie(proxy)
    async with start_proxy(proxy_config, secdist=dev_secdist(session_secrets=[NEW])) as proxy:
        assert await user_of(proxy, new_cookie) == "demo-user"
        assert await user_of(proxy, old_cookie) is None


async def test_the_session_lifetime_is_configured(
    start_proxy: Started, proxy_config: QrpayConfig, frozen_clock: FrozenClock
) -> None:
    config = with_sessions(proxy_config, ttl_seconds=3600)
    async with start_proxy(config) as proxy:
        answer = await proxy.post("/login", data={"user_id": "demo-user", "next": "/"})
        assert "Max-Age=3600" in answer.headers["set-cookie"]
        cookie = proxy.cookies["qrpay_session"]
        frozen_clock.advance(timedelta(minutes=59))
        assert await user_of(proxy, cookie) == "demo-user"
        frozen_clock.advance(timedelta(minutes=1))
        assert await user_of(proxy, cookie) is None


async def test_a_user_s_sessions_are_revoked_by_time(
    start_proxy: Started, proxy_config: QrpayConfig, frozen_clock: FrozenClock
) -> None:
    async with start_proxy(proxy_config) as proxy:
        stolen = await signed_in_cookie(proxy)
        other = await signed_in_cookie(proxy, "guest-2")
    frozen_clock.advance(timedelta(seconds=1))
    revoked = with_sessions(
        proxy_config, revoked_before={"demo-user": wire_time(frozen_clock.now())}
    )
    async with start_proxy(revoked) as proxy:
        assert await user_of(proxy, stolen) is None
        assert await user_of(proxy, other) == "guest-2"
        # Signing in again after the revocation works.
        frozen_clock.advance(timedelta(seconds=1))
        assert await user_of(proxy, await signed_in_cookie(proxy)) == "demo-user"


async def test_development_sign_in_is_off_unless_the_config_enables_it(
    start_proxy: Started, proxy_config: QrpayConfig
) -> None:
    data = proxy_config.model_dump(mode="json")
    data.pop("sessions", None)
    production = parse_config(data)
    assert production.sessions.development_sign_in is False
    async with start_proxy(proxy_config) as proxy:
        cookie = await signed_in_cookie(proxy)
    async with start_proxy(production) as proxy:
        assert (await proxy.get("/login")).status_code == 404
        answer = await proxy.post("/login", data={"user_id": "demo-user", "next": "/"})
        assert answer.status_code == 404
        assert answer.json()["code"] == "sign_in_disabled"
        assert "set-cookie" not in answer.headers
        # A session made some other way still works.
        assert await user_of(proxy, cookie) == "demo-user"
