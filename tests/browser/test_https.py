"""Chromium signs in and pays over https, through a TLS-terminating nginx in front of api-proxy.

nginx sends X-Forwarded-Proto/-For/-Host (the local cluster's headers) and api-proxy
trusts 127.0.0.1 (``http.trusted_proxies``): the browser's Origin ``https://host`` then
matches what api-proxy sees, the session cookie is Secure and answers carry HSTS. Without
that every sign-in and pay behind a TLS balancer was refused as cross-site.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - CI (QRPAY_REQUIRE_BROWSER=1) must not skip
    if os.environ.get("QRPAY_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

from qrpay.kernel.clock import SystemClock
from qrpay.runner.config import parse_config
from qrpay.runner.context import build_app
from tests.browser.fakes import FakeDownstreams
from tests.browser.server import serve_in_thread
from tests.support.browser import PHONE, TIMEOUT, screenshot
from tests.support.services import dev_config, make_context, point_services_at
from tests.support.tls import tls_in_front

HSTS = 3600


@pytest.fixture(scope="module")
def https_url(fakes: FakeDownstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pointed = point_services_at(
        dev_config(), fakes.base_url, "payments-eda", "iiko-integration", retries=0
    )
    data = pointed.model_dump(mode="json")
    data["http"].update(trusted_proxies=["127.0.0.1"], hsts_max_age_seconds=HSTS)
    ctx = make_context(
        "api-proxy",
        tmp_path_factory.mktemp("api-proxy"),
        config=parse_config(data),
        clock=SystemClock(),
    )
    with (
        serve_in_thread(build_app(ctx)) as plain_url,
        tls_in_front(plain_url, tmp_path_factory.mktemp("nginx")) as url,
    ):
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, locale="en-GB", device_scale_factor=2, ignore_https_errors=True
    )
    context.set_default_timeout(TIMEOUT)
    page: Page = context.new_page()
    yield page
    context.close()


def test_sign_in_and_pay_over_https_behind_the_balancer(
    page: Page, https_url: str, fakes: FakeDownstreams
) -> None:
    fakes.polls_to_settle = 1
    fakes.polling_delay = "0.2"
    order = fakes.new_order()
    link = f"{https_url}/go-pay/orders?order_id={order.order_id}&hmac={order.hmac}"
    opened = page.goto(link)
    assert opened is not None
    assert opened.headers["strict-transport-security"] == f"max-age={HSTS}"
    expect(page.locator("main")).to_have_attribute("data-state", "bill")

    page.get_by_role("link", name="Sign in to pay").click()
    page.get_by_role("button", name="Sign in as demo-user").click()
    expect(page.locator("main")).to_have_attribute("data-state", "bill")
    assert page.url == link
    [cookie] = [c for c in page.context.cookies() if c["name"] == "qrpay_session"]
    assert cookie["secure"] is True
    assert cookie["httpOnly"] is True

    page.get_by_role("button", name="Pay ₽1,200").click()
    expect(page.get_by_role("heading", name="Paid")).to_be_visible()
    screenshot(page, "https-paid")
    assert order.pay_cards == ["card-ok"]
    # The user came from the session, through nginx and api-proxy.
    assert fakes.headers_seen[-1]["X-Yandex-UID"] == "demo-user"
