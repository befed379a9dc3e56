"""The payer page in Chromium, against api-proxy with fake payments-eda and iiko-integration.

Every state of the page, deterministically: the bill, waiting, paid, declined
then another card, a tampered link, a closed or already paid order, a lost
connection, sign in to pay; one pay request however often Pay is clicked; a split
bill's share and its refusals in words (the whole stack: test_split_bill.py).
Each state is saved under out/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

try:
    from playwright.sync_api import Page, Route, expect
except ImportError:  # pragma: no cover - CI (QRPAY_REQUIRE_BROWSER=1) must not skip
    if os.environ.get("QRPAY_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

from qrpay.kernel.clock import SystemClock
from qrpay.payments_eda.schemas import IDEMPOTENCY_TOKEN_HEADER, payment_id_for
from qrpay.runner.context import build_app
from tests.browser.fakes import FakeDownstreams, FakeOrder
from tests.browser.server import serve_in_thread
from tests.support.browser import PHONE, TIMEOUT, publish, screenshot
from tests.support.services import dev_config, make_context, point_services_at
from tests.support.waiting import until

TOKEN = re.compile(r"[A-Za-z0-9_-]{8,128}")
SHARE_POST = "**/4.0/payments/v1/orders/share"


@pytest.fixture(scope="module")
def proxy_url(fakes: FakeDownstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = point_services_at(
        dev_config(), fakes.base_url, "payments-eda", "iiko-integration", retries=0
    )
    ctx = make_context(
        "api-proxy", tmp_path_factory.mktemp("api-proxy"), config=config, clock=SystemClock()
    )
    with serve_in_thread(build_app(ctx)) as url:
        yield url


@pytest.fixture(autouse=True)
def _reset(fakes: FakeDownstreams) -> None:
    fakes.pay_delay = 0.0
    fakes.preorder_status = 200
    fakes.polling_delay = "0.3"
    fakes.polls_to_settle = 2


def new_page(browser: Any, locale: str = "en-GB") -> Page:
    context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT)
    page: Page = context.new_page()
    return page


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    page = new_page(browser)
    yield page
    page.context.close()


def sign_in(page: Page, base: str, user: str = "demo-user") -> None:
    answer = page.context.request.post(f"{base}/login", form={"user_id": user, "next": "/"})
    assert answer.ok, answer.status


def link(base: str, order: FakeOrder, *, hmac: str | None = None) -> str:
    return f"{base}/go-pay/orders?order_id={order.order_id}&hmac={hmac or order.hmac}"


def open_order(
    page: Page, base: str, fakes: FakeDownstreams, *, signed_in: bool = True, **order: Any
) -> FakeOrder:
    """A new order of the fakes, its link opened by a guest signed in (unless not)."""
    new = fakes.new_order(**order)
    if signed_in:
        sign_in(page, base)
    page.goto(link(base, new))
    return new


def state(page: Page, name: str) -> None:
    expect(page.locator("main")).to_have_attribute("data-state", name)


def test_the_bill_with_cashback_and_cards(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    open_order(page, proxy_url, fakes)
    state(page, "bill")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pushkin Café")
    expect(page.locator("#restaurant-name")).to_be_focused()
    rows = page.locator("#bill-lines tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(1)).to_contain_text("Pelmeni")
    expect(rows.nth(1)).to_contain_text("₽620.50")
    expect(page.locator("#bill-total")).to_have_text("₽1,200")
    expect(page.locator("#cashback-offer")).to_have_text("Cashback ₽360: 30% of the bill")
    # The cards are radio buttons with labels; the unavailable one cannot be picked.
    expect(page.get_by_role("radio")).to_have_count(3)
    expect(page.get_by_label("VISA •••• 4242, expires 12/30")).to_be_checked()
    expect(page.get_by_label("VISA •••• 9995, expires 06/29")).to_be_enabled()
    expect(page.get_by_label("MASTERCARD •••• 0119, expires 01/24 (unavailable)")).to_be_disabled()
    expect(page.get_by_role("group", name="Card to pay with")).to_be_visible()
    expect(page.get_by_role("button", name="Pay ₽1,200")).to_be_enabled()
    expect(page.get_by_text("Signed in as demo-user")).to_be_visible()
    screenshot(page, "bill")


def test_pay_wait_and_paid_with_the_cashback(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.polls_to_settle = 3
    order = open_order(page, proxy_url, fakes)
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "waiting")
    expect(page.get_by_role("heading", name="Processing the payment")).to_be_focused()
    expect(page.locator("#live")).to_have_text("Processing the payment")
    screenshot(page, "waiting")
    state(page, "paid")
    expect(page.get_by_role("heading", name="Paid")).to_be_focused()
    expect(page.locator("#paid-cashback")).to_have_text("Cashback of ₽360 will arrive soon.")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽1,200 at Pushkin Café.")
    expect(page.locator("#live")).to_have_text("Paid")
    publish(screenshot(page, "paid"), "paid.png")
    assert order.pay_cards == ["card-ok"]
    # A long-poll each time; this server answers at once without a change, so the page
    # polled until final, never faster than X-Polling-Delay (0.3 s) asked.
    assert order.poll_waits == ["20000"] * 3
    assert len(order.poll_times) == 3
    gaps = [b - a for a, b in zip(order.poll_times, order.poll_times[1:], strict=False)]
    assert all(gap >= 0.28 for gap in gaps), gaps


def test_declined_then_another_card_pays(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = open_order(page, proxy_url, fakes)
    page.get_by_label("VISA •••• 9995, expires 06/29").check()
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "bill")
    expect(page.locator("main")).to_have_attribute("data-reason", "declined")
    notice = page.get_by_role("alert")
    expect(notice).to_have_text(
        "The payment was declined. Choose another card or pay at the restaurant."
    )
    expect(notice).to_be_focused()
    # Another card is offered first.
    expect(page.get_by_label("VISA •••• 4242, expires 12/30")).to_be_checked()
    screenshot(page, "declined")
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "paid")
    assert order.pay_cards == ["card-declined", "card-ok"]


def test_a_tampered_hmac_shows_not_found(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = fakes.new_order()
    sign_in(page, proxy_url)
    tampered = order.hmac[:-1] + ("0" if order.hmac[-1] != "0" else "1")
    page.goto(link(proxy_url, order, hmac=tampered))
    state(page, "not-found")
    expect(page.get_by_role("heading", name="Order not found")).to_be_visible()
    expect(page.get_by_text("Scan the QR code on the bill again")).to_be_visible()
    expect(page.get_by_role("button", name="Pay", exact=False)).to_have_count(0)
    screenshot(page, "not-found")


def test_a_link_without_order_or_hmac_is_not_found(page: Page, proxy_url: str) -> None:
    page.goto(f"{proxy_url}/go-pay/orders?order_id=ord-1")
    state(page, "not-found")


def test_a_closed_order(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    open_order(page, proxy_url, fakes, status="CANCELED")
    state(page, "closed")
    expect(page.get_by_role("heading", name="The order is closed")).to_be_visible()
    expect(page.locator("#closed-text")).to_contain_text("Please pay at the restaurant")
    screenshot(page, "closed")


def test_an_already_paid_order(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    open_order(page, proxy_url, fakes, status="PAYED")
    state(page, "closed")
    expect(page.get_by_role("heading", name="The order is already paid")).to_be_visible()
    screenshot(page, "already-paid")


def test_a_refunded_order_says_what_came_back(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = fakes.new_order(status="PAYED")
    order.refunded = "300.00"
    sign_in(page, proxy_url)
    page.goto(link(proxy_url, order))
    state(page, "closed")
    expect(page.get_by_role("heading", name="The order is already paid")).to_be_visible()
    expect(page.locator("#closed-refunded")).to_have_text(re.compile(r"300.*refunded to your card"))


def test_an_already_paid_order_without_refunds_says_nothing_of_them(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = open_order(page, proxy_url, fakes, status="PAYED")
    state(page, "closed")
    expect(page.get_by_role("heading", name="The order is already paid")).to_be_visible()
    # The page asked for the payment's status, which said nothing was refunded.
    assert until(lambda: bool(order.poll_times))
    expect(page.locator("#closed-refunded")).to_be_hidden()


def test_an_order_closed_while_the_bill_was_open(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = open_order(page, proxy_url, fakes)
    state(page, "bill")
    order.status = "CANCELED"  # the TTL closed it meanwhile: pay answers 409 order_closed
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "closed")
    expect(page.locator("main")).to_have_attribute("data-reason", "order_closed")


def test_a_lost_connection_offers_a_retry(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = fakes.new_order()
    sign_in(page, proxy_url)

    def offline(route: Route) -> None:
        route.abort("internetdisconnected")

    page.route("**/4.0/payments/v1/preorder*", offline)
    page.goto(link(proxy_url, order))
    state(page, "offline")
    expect(page.get_by_role("heading", name="No connection")).to_be_focused()
    retry = page.get_by_role("button", name="Try again")
    expect(retry).to_be_visible()
    screenshot(page, "offline")
    page.unroute("**/4.0/payments/v1/preorder*")
    retry.click()
    state(page, "bill")


def test_a_lost_connection_while_waiting_resumes_polling(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.polling_delay = "0.1"
    fakes.polls_to_settle = 50
    order = open_order(page, proxy_url, fakes)
    page.route("**/4.0/payments/v1/orders?*", lambda route: route.abort("connectionreset"))
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "offline")
    page.unroute("**/4.0/payments/v1/orders?*")
    order.polls_left = 1
    page.get_by_role("button", name="Try again").click()
    state(page, "paid")
    assert order.pay_cards == ["card-ok"]  # the retry polled; it did not pay again


def test_payments_eda_down_says_unavailable(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.preorder_status = 503
    open_order(page, proxy_url, fakes, signed_in=False)
    state(page, "offline")
    expect(page.get_by_role("heading", name="Service unavailable")).to_be_visible()
    fakes.preorder_status = 200
    page.get_by_role("button", name="Try again").click()
    state(page, "bill")


def test_double_click_on_pay_sends_one_request(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.pay_delay = 0.5
    before = fakes.pay.times_called
    order = open_order(page, proxy_url, fakes)
    button = page.locator("#pay-button")
    expect(button).to_have_text("Pay ₽1,200")
    button.dblclick()
    expect(button).to_be_disabled()
    expect(button).to_have_text("Sending…")
    expect(button).to_have_attribute("aria-busy", "true")
    # Even a script submitting twice more while the first is in flight sends nothing more.
    page.evaluate(
        "() => { const f = document.getElementById('pay-form'); f.requestSubmit(); f.requestSubmit(); }"
    )
    state(page, "paid")
    assert fakes.pay.times_called - before == 1
    assert order.pay_cards == ["card-ok"]


def test_sign_in_to_pay(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    order = open_order(page, proxy_url, fakes, signed_in=False)
    state(page, "bill")
    expect(page.get_by_role("radio")).to_have_count(0)
    sign_in_link = page.get_by_role("link", name="Sign in to pay")
    expect(sign_in_link).to_be_visible()
    screenshot(page, "sign-in-to-pay")
    sign_in_link.click()
    expect(page.get_by_role("heading", name="Sign in (development)")).to_be_visible()
    screenshot(page, "login")
    page.get_by_role("button", name="Sign in as demo-user").click()
    state(page, "bill")
    assert f"order_id={order.order_id}" in page.url
    expect(page.get_by_role("radio")).to_have_count(3)
    # The session user reached payments-eda, never a header the page could forge.
    assert fakes.headers_seen[-1]["X-Yandex-UID"] == "demo-user"
    page.get_by_role("button", name="Sign out").click()
    state(page, "bill")
    expect(page.get_by_role("link", name="Sign in to pay")).to_be_visible()


def test_russian_by_the_browser_language(
    browser: Any, proxy_url: str, fakes: FakeDownstreams
) -> None:
    page = new_page(browser, locale="ru-RU")
    try:
        open_order(page, proxy_url, fakes)
        state(page, "bill")
        expect(page.locator("html")).to_have_attribute("lang", "ru")
        expect(page.get_by_role("button", name="Оплатить 1 200 ₽")).to_be_visible()
        expect(page.get_by_role("group", name="Карта для оплаты")).to_be_visible()
        expect(page.get_by_text("Итого")).to_be_visible()
        page.get_by_role("button", name="Разделить счёт").click()
        expect(page.get_by_role("group", name="Сколько платите")).to_be_visible()
        page.get_by_role("radio", name="Поровну").check()
        expect(page.get_by_label("Сколько человек делят счёт")).to_have_value("2")
        expect(page.locator("#share-price")).to_have_text("600 ₽")
        screenshot(page, "split-ru")
        # Back to everything left, no tip: the whole-bill payment, as before.
        page.get_by_role("radio", name="Всё, что осталось").check()
        assert fakes.headers_seen[-1]["X-Request-Language"] == "ru"
        screenshot(page, "bill-ru")
        page.get_by_role("button", name="Оплатить 1 200 ₽").click()
        expect(page.get_by_role("heading", name="Оплачено")).to_be_visible()
        expect(page.locator("#paid-cashback")).to_have_text("Кэшбэк 360 ₽ скоро придёт.")
        screenshot(page, "paid-ru")
    finally:
        page.context.close()


def test_keyboard_only_payment(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    order = open_order(page, proxy_url, fakes)
    state(page, "bill")
    # The page puts focus on its heading; from there: the cards, then Pay.
    expect(page.locator("#restaurant-name")).to_be_focused()
    page.keyboard.press("Tab")
    first = page.get_by_label("VISA •••• 4242, expires 12/30")
    expect(first).to_be_focused()
    outline = first.evaluate(
        "el => getComputedStyle(el.nextElementSibling).outlineStyle + ' ' + "
        "getComputedStyle(el.nextElementSibling).outlineWidth"
    )
    assert outline == "solid 3px", outline
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("VISA •••• 9995, expires 06/29")).to_be_checked()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Pay ₽1,200")).to_be_focused()
    # Backwards from the cards: the account bar, then the skip link.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Sign out")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Pay ₽1,200")).to_be_focused()
    page.keyboard.press("Enter")
    state(page, "paid")
    assert order.pay_cards == ["card-ok"]


SPLIT_ROUTE = "**/4.0/payments/v1/orders/split?*"


def split_the_bill(page: Page) -> None:
    page.get_by_role("button", name="Split the bill").click()
    expect(page.get_by_role("group", name="How much you pay")).to_be_visible()


def pick_items(page: Page, *items: str) -> None:
    """Split the bill and pay for ``items`` (their checkboxes' names) only."""
    split_the_bill(page)
    page.get_by_role("radio", name="My items").check()
    for item in items:
        page.get_by_role("checkbox", name=item).check()


def test_a_share_of_items_is_paid_as_a_share(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    open_order(page, proxy_url, fakes)
    state(page, "bill")
    # Nobody splits yet: the whole-bill button, and splitting offered after it.
    expect(page.get_by_role("button", name="Pay ₽1,200")).to_be_visible()
    expect(page.locator("#split-summary")).to_be_hidden()
    split_the_bill(page)
    expect(page.get_by_role("radio", name="Everything left")).to_be_focused()
    expect(page.get_by_role("button", name="Split the bill")).to_be_hidden()
    page.get_by_role("radio", name="My items").check()
    # The discount line is nobody's to pay.
    expect(page.get_by_role("checkbox")).to_have_count(3)
    page.get_by_role("checkbox", name="Borscht, ₽450").check()
    page.get_by_role("checkbox", name="Kompot, ₽180").check()
    expect(page.locator("#share-price")).to_have_text("₽630")
    expect(page.locator("#share-cashback")).to_have_text("Cashback on your share: up to ₽189")
    before = fakes.pay.times_called
    page.get_by_role("button", name="Pay ₽630").click()
    state(page, "paid")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽630 at Pushkin Café.")
    expect(page.locator("#paid-tip")).to_be_hidden()
    expect(page.locator("#paid-left")).to_have_text("Still to pay at the table: ₽570.")
    assert fakes.pay.times_called == before
    body = fakes.pay_share.calls[-1]["json"]
    assert (body["amount"], body["share"]) == ("630.00", {"way": "items", "items": [0, 2]})
    assert "tip" not in body
    assert "tip_percent" not in body


def test_a_stale_share_price_is_quoted_again(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = open_order(page, proxy_url, fakes)
    split_the_bill(page)
    page.get_by_role("radio", name="5%", exact=True).check()
    expect(page.locator("#share-price")).to_have_text("₽1,200")
    expect(page.locator("#tip-price")).to_have_text("₽60")
    # Another guest pays 200 before this page looks at the bill again.
    page.route(SPLIT_ROUTE, lambda route: route.abort("connectionreset"))
    order.paid = Decimal(200)
    page.get_by_role("button", name="Pay ₽1,260").click()
    notice = page.locator("#share-notice")
    expect(notice).to_have_text(
        "Another guest paid meanwhile. Your share is now ₽1,050: check it and pay again."
    )
    expect(notice).to_be_focused()
    expect(page.locator("#share-price")).to_have_text("₽1,000")
    expect(page.locator("#tip-price")).to_have_text("₽50")
    page.get_by_role("button", name="Pay ₽1,050").click()
    state(page, "paid")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽1,000 at Pushkin Café.")
    expect(page.locator("#paid-tip")).to_have_text("Tip ₽50, apart from the bill.")
    bodies = [call["json"] for call in fakes.pay_share.calls[-2:]]
    assert [(b["amount"], b["tip_percent"]) for b in bodies] == [("1200.00", 5), ("1000.00", 5)]


def test_a_reload_while_a_share_is_paid_polls_it_again(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.polls_to_settle = 1000
    order = open_order(page, proxy_url, fakes)
    pick_items(page, "Borscht, ₽450")
    page.get_by_role("button", name="Pay ₽450").click()
    state(page, "waiting")
    page.reload()
    state(page, "waiting")
    (share,) = order.shares.values()
    share.polls_left = 1
    state(page, "paid")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽450 at Pushkin Café.")
    assert order.pay_cards == ["card-ok"]  # polled again, never paid twice
    # Paid and forgotten: the next reload shows the bill with the share in it.
    page.reload()
    state(page, "bill")
    expect(page.locator("#split-summary")).to_have_text("Paid ₽450 of ₽1,200. Left to pay: ₽750.")


def test_split_refusals_in_words(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    order = open_order(page, proxy_url, fakes)
    state(page, "bill")
    split_the_bill(page)
    notice = page.locator("#share-notice")
    page.get_by_role("radio", name="An amount").check()
    page.get_by_label("Amount, up to ₽1,200").fill("5000")
    expect(notice).to_have_text("That is more than the ₽1,200 left to pay.")
    page.get_by_label("Amount, up to ₽1,200").fill("300,50")
    expect(page.locator("#share-price")).to_have_text("₽300.50")
    expect(notice).to_be_hidden()
    page.get_by_role("radio", name="Other amount").check()
    page.get_by_label("Tip amount").fill("400")
    page.get_by_role("button", name="Pay ₽700.50").click()
    expect(notice).to_have_text(
        "The tip is not valid: at most your share, with at most two decimals."
    )
    page.get_by_role("radio", name="An equal share").check()
    page.get_by_label("People sharing the bill").fill("1")
    page.get_by_role("button", name="Pay", exact=False).click()
    expect(notice).to_have_text("A bill splits into 2 to 50 shares.")
    assert order.pay_cards == []


def test_the_whole_bill_after_another_guest_began_a_share(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    order = open_order(page, proxy_url, fakes)
    state(page, "bill")
    before = fakes.pay.times_called

    # The page has not seen the other guest's share until its own pay is refused.
    def stale_until_paid(route: Route) -> None:
        if fakes.pay.times_called > before:
            route.continue_()
        else:
            route.abort("connectionreset")

    page.route(SPLIT_ROUTE, stale_until_paid)
    order.held = Decimal(300)
    page.get_by_role("button", name="Pay ₽1,200").click()
    expect(page.locator("#share-notice")).to_have_text(
        "Guests are splitting this bill: choose your share."
    )
    expect(page.locator("#split-summary")).to_have_text(
        "Paid ₽0 of ₽1,200, ₽300 being paid. Left to pay: ₽900."
    )
    expect(page.get_by_role("group", name="How much you pay")).to_be_visible()
    page.get_by_role("button", name="Pay ₽900").click()
    state(page, "paid")
    assert fakes.pay_share.calls[-1]["json"]["share"] == {"way": "rest"}


def test_nothing_left_while_others_pay(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    order = fakes.new_order()
    order.held = Decimal(1200)
    sign_in(page, proxy_url)
    page.goto(link(proxy_url, order))
    state(page, "bill")
    expect(page.locator("#share-notice")).to_have_text(
        "Nothing is left for you to pay: other guests are paying the rest."
    )
    expect(page.locator("#pay-button")).to_be_hidden()
    # They paid: the page says so without a reload.
    order.held, order.paid, order.status = Decimal(0), Decimal(1200), "PAYED"
    expect(page.get_by_role("heading", name="The order is already paid")).to_be_visible()


CONTRAST_JS = """
() => {
  function rgb(text) { return text.match(/[\\d.]+/g).slice(0, 3).map(Number); }
  function lum(c) {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function background(el) {
    for (let node = el; node; node = node.parentElement) {
      const bg = getComputedStyle(node).backgroundColor;
      if (bg && !bg.startsWith('rgba(0, 0, 0, 0)') && bg !== 'transparent') return rgb(bg);
    }
    return [255, 255, 255];
  }
  const out = {};
  for (const sel of ['#restaurant-name', '#bill-lines td', 'table.bill caption', '#cashback-offer',
                     '#pay-button', '.card-option label', '.account .who', '.account button']) {
    const el = document.querySelector(sel);
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}
"""


def test_text_contrast_is_wcag_aa(page: Page, proxy_url: str, fakes: FakeDownstreams) -> None:
    open_order(page, proxy_url, fakes)
    state(page, "bill")
    ratios: dict[str, float] = page.evaluate(CONTRAST_JS)
    low = {selector: round(ratio, 2) for selector, ratio in ratios.items() if ratio < 4.5}
    assert not low, low


def test_restaurants_where_the_feature_is_on(page: Page, proxy_url: str) -> None:
    sign_in(page, proxy_url)
    page.goto(f"{proxy_url}/go-pay/restaurants?zone=moscow")
    items = page.locator("#restaurant-list li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Pushkin Café")
    expect(items.first).to_contain_text("30% cashback")
    expect(page.get_by_role("status")).to_have_text("2 restaurants")
    expect(page.get_by_label("City")).to_have_value("moscow")
    screenshot(page, "restaurants")


def test_no_restaurants_where_the_feature_is_off(page: Page, proxy_url: str) -> None:
    sign_in(page, proxy_url, user="guest-2")
    page.goto(f"{proxy_url}/go-pay/restaurants?zone=spb")
    expect(page.get_by_role("status")).to_have_text(
        "Paying by QR code is not available for you in this city yet."
    )
    expect(page.locator("#restaurant-list li")).to_have_count(0)
    screenshot(page, "restaurants-unavailable")


def test_restaurants_ask_to_sign_in(page: Page, proxy_url: str) -> None:
    page.goto(f"{proxy_url}/go-pay/restaurants")
    expect(page.get_by_role("status")).to_have_text("Sign in to see restaurants with cashback.")
    expect(page.get_by_role("link", name="Sign in").last).to_be_visible()


# --- one tap, one payment (issue 18) ---------------------------------------------------------


def tokens(route: Any, since: int = 0) -> list[str]:
    """The X-Idempotency-Token of each pay call the fake got, from the ``since``-th on."""
    return [call["headers"].get(IDEMPOTENCY_TOKEN_HEADER) for call in route.calls[since:]]


def stored_pay(page: Page, order: FakeOrder) -> Any:
    return page.evaluate(f"() => sessionStorage.getItem('qrpay.pay.{order.order_id}')")


def lose_the_first_answer(page: Page, pattern: str) -> list[str]:
    """The first pay on ``pattern`` reaches payments-eda and is made; its answer never comes
    back to the page (the connection is reset). Returns the statuses payments-eda answered."""
    answered: list[str] = []

    def lose(route: Route) -> None:
        if answered:
            route.continue_()
            return
        answered.append(str(route.fetch().status))
        route.abort("connectionreset")

    page.route(pattern, lose)
    return answered


def pay_losing_the_answer(page: Page, pattern: str, button: str) -> None:
    """Tap ``button``: the pay is made at payments-eda, its answer lost on the way back."""
    answered = lose_the_first_answer(page, pattern)
    page.get_by_role("button", name=button).click()
    state(page, "offline")
    assert answered == ["200"]


def assert_the_share_was_sent_again_and_paid_once(
    fakes: FakeDownstreams, order: FakeOrder, before: int, amount: int
) -> None:
    """The share's pay went twice after ``before`` (pay calls), with the same token, and
    made one share of ``amount``."""
    first, again = tokens(fakes.pay_share, before)
    assert first == again
    assert len(order.shares) == 1
    assert order.paid == Decimal(amount)


def test_each_tap_sends_a_new_token_and_a_declined_payment_forgets_it(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    before = fakes.pay.times_called
    order = open_order(page, proxy_url, fakes)
    page.get_by_label("VISA •••• 9995, expires 06/29").check()
    page.get_by_role("button", name="Pay ₽1,200").click()
    expect(page.locator("main")).to_have_attribute("data-reason", "declined")
    assert stored_pay(page, order) is None
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "paid")
    assert stored_pay(page, order) is None
    declined, paid = tokens(fakes.pay, before)
    assert TOKEN.fullmatch(declined), declined
    assert TOKEN.fullmatch(paid), paid
    assert declined != paid
    assert order.pay_cards == ["card-declined", "card-ok"]


def test_a_double_tap_on_a_share_pays_it_once(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    fakes.pay_delay = 0.5  # the fake's pay answers late: the taps land while it is in flight
    before = fakes.pay_share.times_called
    order = open_order(page, proxy_url, fakes)
    pick_items(page, "Borscht, ₽450")
    page.get_by_role("button", name="Pay ₽450").dblclick()
    page.evaluate(
        "() => { const f = document.getElementById('pay-form'); f.requestSubmit(); f.requestSubmit(); }"
    )
    state(page, "paid")
    (token,) = tokens(fakes.pay_share, before)
    assert TOKEN.fullmatch(token)
    assert list(order.shares) == [payment_id_for(order.order_id, token)]
    assert order.paid == Decimal(450)


def test_a_share_whose_answer_is_lost_is_followed_after_a_reload_never_paid_twice(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    before = fakes.pay_share.times_called
    order = open_order(page, proxy_url, fakes)
    pick_items(page, "Kompot, ₽180")
    pay_losing_the_answer(page, SHARE_POST, "Pay ₽180")
    assert stored_pay(page, order) is not None
    page.reload()
    state(page, "paid")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽180 at Pushkin Café.")
    assert_the_share_was_sent_again_and_paid_once(fakes, order, before, 180)
    assert fakes.pay_share.calls[before]["json"] == fakes.pay_share.calls[before + 1]["json"]
    assert stored_pay(page, order) is None
    # Paid and forgotten: the next tap is a new payment.
    page.reload()
    state(page, "bill")
    expect(page.locator("#split-summary")).to_have_text("Paid ₽180 of ₽1,200. Left to pay: ₽1,020.")


def test_try_again_after_a_lost_answer_re_sends_the_same_token(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    before = fakes.pay_share.times_called
    order = open_order(page, proxy_url, fakes)
    split_the_bill(page)
    page.get_by_role("radio", name="An equal share").check()
    page.locator("#parts").fill("4")
    pay_losing_the_answer(page, SHARE_POST, "Pay ₽300")
    page.get_by_role("button", name="Try again").click()
    state(page, "paid")
    assert_the_share_was_sent_again_and_paid_once(fakes, order, before, 300)


def test_a_whole_bill_pay_whose_answer_is_lost_is_followed_never_paid_twice(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    before = fakes.pay.times_called
    order = open_order(page, proxy_url, fakes)
    pay_losing_the_answer(page, "**/4.0/payments/v1/orders", "Pay ₽1,200")
    page.reload()
    state(page, "paid")
    expect(page.locator("#paid-total")).to_have_text("You paid ₽1,200 at Pushkin Café.")
    assert len(tokens(fakes.pay, before)) == 1  # the reload followed the order's payment
    assert order.pay_cards == ["card-ok"]
    assert stored_pay(page, order) is None


def test_a_whole_bill_pay_that_never_arrived_is_sent_again_with_its_token(
    page: Page, proxy_url: str, fakes: FakeDownstreams
) -> None:
    """api-proxy answered WAITING for a pay it lost (here: it never reached payments-eda);
    the order's status names no payment of this page's, so the page sends it once more."""
    before = fakes.pay.times_called
    order = open_order(page, proxy_url, fakes)
    lost: list[str] = []

    def answer_for_a_lost_pay(route: Route) -> None:
        if lost:
            route.continue_()
            return
        token = route.request.headers["x-idempotency-token"]
        lost.append(token)
        route.fulfill(
            status=200,
            content_type="application/json",
            json={
                "status": "WAITING",
                "message": "The payment is being processed",
                "payment_id": payment_id_for(order.order_id, token),
            },
        )

    page.route("**/4.0/payments/v1/orders", answer_for_a_lost_pay)
    page.get_by_role("button", name="Pay ₽1,200").click()
    state(page, "paid")
    assert tokens(fakes.pay, before) == lost  # sent once, with the tap's token
    assert order.whole_payment == payment_id_for(order.order_id, lost[0])
    assert order.pay_cards == ["card-ok"]
