"""Three guests split one bill on the payer page, in three browser contexts (issue 12).

Real processes (`qrpay up`), the sandbox gateway, every call through api-proxy as the page
makes it. One guest pays two items, one an equal share of three, one the rest with a 10%
tip; each sees what is left change while the others pay; the POS (`POST /orders/list` with
the dev key) sees PAYED only after the third. A guest whose page had not yet seen the first
payment (its looks at the bill fail for a while) picks an item the first guest paid: the
page says another guest has it. The split screens are saved to docs/screenshots/.

One tap, one payment (issue 18), against the real payments-eda: a double tap on a share pays
it once; a share whose answer is lost on the way back (made, the connection reset) and a
reload pay it once, the reload sending it again with the tap's token.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

try:
    from playwright.sync_api import Page, Route, expect
except ImportError:  # pragma: no cover - CI (QRPAY_REQUIRE_BROWSER=1) must not skip
    if os.environ.get("QRPAY_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

from qrpay.runner.registry import SERVICE_MODULES
from tests.support.browser import PHONE, publish, screenshot
from tests.support.processes import QrpayUp, order_id_of
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

SPLIT_ROUTE = "**/4.0/payments/v1/orders/split?*"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QrpayUp]:
    with QrpayUp.running(tmp_path_factory.mktemp("split-up"), SERVICE_MODULES) as instance:
        yield instance


class Guest:
    """One guest's phone: a browser context signed in with the development sign-in."""

    def __init__(self, browser: Any, base: str, page_url: str) -> None:
        self.context = browser.new_context(viewport=PHONE, locale="en-GB", device_scale_factor=2)
        self.context.set_default_timeout(30_000)
        answer = self.context.request.post(
            f"{base}/login", form={"user_id": "demo-user", "next": "/"}
        )
        assert answer.ok, answer.status
        self.page: Page = self.context.new_page()
        self.url = page_url

    def open(self) -> None:
        self.page.goto(self.url)
        expect(self.page.locator("main")).to_have_attribute("data-state", "bill")

    def split_the_bill(self) -> None:
        self.page.get_by_role("button", name="Split the bill").click()
        expect(self.page.get_by_role("group", name="How much you pay")).to_be_visible()

    def way(self, name: str) -> None:
        self.page.get_by_role("radio", name=name, exact=True).check()

    def share(self, price: str) -> None:
        expect(self.page.locator("#share-price")).to_have_text(price)

    def pay(self, amount: str) -> None:
        self.page.get_by_role("button", name=f"Pay {amount}").click()

    def paid(self) -> None:
        expect(self.page.get_by_role("heading", name="Paid")).to_be_visible()

    def summary(self, text: str) -> None:
        expect(self.page.locator("#split-summary")).to_have_text(text)

    def left_after(self, text: str) -> None:
        expect(self.page.locator("#paid-left")).to_have_text(text)


@pytest.fixture
def guests(browser: Any, up: QrpayUp, tmp_path: Path) -> Iterator[tuple[Guest, Guest, Guest]]:
    link = up.sell(tmp_path, "Soup=400", "Steak=350", "Wine=250", "Tea=500")
    query = parse_qs(urlsplit(link).query)
    base = up.url("api-proxy")
    page_url = f"{base}/go-pay/orders?order_id={query['order_id'][0]}&hmac={query['hmac'][0]}"
    made = [Guest(browser, base, page_url) for _ in range(3)]
    try:
        yield made[0], made[1], made[2]
    finally:
        for guest in made:
            guest.context.close()


def split_view(up: QrpayUp, guest: Guest) -> dict[str, Any]:
    """The bill as payments-eda keeps it, read through api-proxy as the page reads it."""
    query = parse_qs(urlsplit(guest.url).query)
    answer = httpx.get(
        f"{up.url('api-proxy')}/4.0/payments/v1/orders/split",
        params={"order_id": query["order_id"][0], "hmac": query["hmac"][0]},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_three_guests_split_one_bill(up: QrpayUp, guests: tuple[Guest, Guest, Guest]) -> None:
    items_guest, equal_guest, rest_guest = guests
    order_id = order_id_of(items_guest.url)
    for guest in guests:
        guest.open()
    # Nothing paid yet: no summary, today's whole-bill button.
    expect(items_guest.page.locator("#split-summary")).to_be_hidden()
    expect(items_guest.page.get_by_role("button", name="Pay ₽1,500")).to_be_visible()

    # The first guest picks two items.
    items_guest.split_the_bill()
    items_guest.way("My items")
    items_guest.page.get_by_role("checkbox", name="Soup, ₽400").check()
    items_guest.page.get_by_role("checkbox", name="Wine, ₽250").check()
    items_guest.share("₽650")
    expect(items_guest.page.locator("#share-cashback")).to_have_text(
        "Cashback on your share: up to ₽195"
    )
    publish(screenshot(items_guest.page, "split-items"), "split-items.png")

    # The third guest's page will not see the first payment for a while: it ticks the soup too.
    rest_guest.split_the_bill()
    rest_guest.way("My items")
    rest_guest.page.get_by_role("checkbox", name="Soup, ₽400").check()
    rest_guest.share("₽400")

    def not_yet(route: Route) -> None:
        route.abort("connectionreset")

    rest_guest.page.route(SPLIT_ROUTE, not_yet)

    items_guest.pay("₽650")
    items_guest.paid()
    expect(items_guest.page.locator("#paid-total")).to_have_text("You paid ₽650 at Pushkin Café.")
    items_guest.left_after("Still to pay at the table: ₽850.")
    view = split_view(up, items_guest)
    assert (view["status"], view["paid"], view["left"]) == ("WAITING", "650.00", "850.00")
    assert view["taken_items"] == [0, 2]
    assert up.pos_status(order_id) == "WAITING"

    # The second guest sees it live; the shares are on, so the page pays a share now.
    equal_guest.summary("Paid ₽650 of ₽1,500. Left to pay: ₽850.")
    expect(equal_guest.page.get_by_role("button", name="Split the bill")).to_be_hidden()
    equal_guest.way("My items")
    expect(
        equal_guest.page.get_by_role("checkbox", name="Soup, ₽400: another guest")
    ).to_be_disabled()
    equal_guest.way("An equal share")
    equal_guest.page.get_by_label("People sharing the bill").fill("3")
    equal_guest.share("₽500")
    # The page remembers N for this table.
    equal_guest.open()
    expect(equal_guest.page.get_by_label("People sharing the bill")).to_have_value("3")
    equal_guest.way("An equal share")
    equal_guest.share("₽500")
    publish(screenshot(equal_guest.page, "split-equal"), "split-equal.png")
    equal_guest.pay("₽500")
    equal_guest.paid()
    equal_guest.left_after("Still to pay at the table: ₽350.")
    items_guest.left_after("Still to pay at the table: ₽350.")
    assert up.pos_status(order_id) == "WAITING"

    # The third guest pays the soup the first one has: the page says so in words.
    rest_guest.pay("₽400")
    notice = rest_guest.page.locator("#share-notice")
    expect(notice).to_have_text("Another guest has this item. Choose other items.")
    expect(notice).to_be_focused()
    screenshot(rest_guest.page, "split-item-taken")
    rest_guest.page.unroute(SPLIT_ROUTE)
    expect(
        rest_guest.page.get_by_role("checkbox", name="Soup, ₽400: another guest")
    ).to_be_disabled()
    rest_guest.summary("Paid ₽1,150 of ₽1,500. Left to pay: ₽350.")

    # ... and pays the rest with a tip, shown apart from the share.
    rest_guest.way("Everything left")
    rest_guest.page.get_by_role("radio", name="10%").check()
    rest_guest.share("₽350")
    expect(rest_guest.page.locator("#tip-price")).to_have_text("₽35")
    expect(rest_guest.page.locator("#share-cashback")).to_have_text(
        "Cashback on your share: up to ₽105"
    )
    publish(screenshot(rest_guest.page, "split-tip"), "split-tip.png")
    assert up.pos_status(order_id) == "WAITING"
    rest_guest.pay("₽385")
    rest_guest.paid()
    expect(rest_guest.page.locator("#paid-total")).to_have_text("You paid ₽350 at Pushkin Café.")
    expect(rest_guest.page.locator("#paid-tip")).to_have_text("Tip ₽35, apart from the bill.")
    rest_guest.left_after("The bill is paid in full.")
    publish(screenshot(rest_guest.page, "split-paid"), "split-paid.png")
    for guest in (items_guest, equal_guest):
        guest.left_after("The bill is paid in full.")

    assert until(lambda: up.pos_status(order_id) == "PAYED")
    view = split_view(up, rest_guest)
    assert (view["status"], view["paid"], view["left"]) == ("PAYED", "1500.00", "0.00")
    assert [s["amount"] for s in view["shares"]] == ["650.00", "500.00", "350.00"]


def test_a_double_tap_and_a_lost_answer_with_a_reload_each_pay_one_share(
    up: QrpayUp, guests: tuple[Guest, Guest, Guest]
) -> None:
    tapper, reloader, _ = guests
    order_id = order_id_of(tapper.url)
    tokens: list[str | None] = []
    for guest in (tapper, reloader):
        guest.page.on(
            "request",
            lambda request: (
                tokens.append(request.headers.get("x-idempotency-token"))
                if request.method == "POST" and request.url.endswith("/orders/share")
                else None
            ),
        )

    # Two rapid taps: one share of a third.
    tapper.open()
    tapper.split_the_bill()
    tapper.way("An equal share")
    tapper.page.get_by_label("People sharing the bill").fill("3")
    tapper.share("₽500")
    tapper.page.get_by_role("button", name="Pay ₽500").dblclick()
    tapper.paid()
    view = split_view(up, tapper)
    assert (view["paid"], view["left"]) == ("500.00", "1000.00"), view

    # A tap whose answer is lost after payments-eda made the share, then a reload.
    reloader.open()
    reloader.way("An equal share")
    reloader.page.get_by_label("People sharing the bill").fill("3")
    reloader.share("₽500")
    made: list[int] = []

    def lose_the_answer(route: Route) -> None:
        if made:
            route.continue_()
            return
        made.append(route.fetch().status)
        route.abort("connectionreset")

    reloader.page.route("**/4.0/payments/v1/orders/share", lose_the_answer)
    reloader.pay("₽500")
    expect(reloader.page.locator("main")).to_have_attribute("data-state", "offline")
    assert made == [200]
    reloader.page.reload()
    reloader.paid()
    expect(reloader.page.locator("#paid-total")).to_have_text("You paid ₽500 at Pushkin Café.")
    view = split_view(up, reloader)
    # One share per tap: the reload's pay named the share the lost one made.
    assert (view["paid"], view["left"]) == ("1000.00", "500.00"), view
    assert [share["amount"] for share in view["shares"]] == ["500.00", "500.00"]
    assert len(tokens) == 3
    assert tokens[0] != tokens[1]
    assert tokens[1] == tokens[2]
    assert up.pos_status(order_id) == "WAITING"
