from __future__ import annotations

import pytest

from qrpay.kernel.deeplink import build_link, sign
from qrpay_tools.guest.errors import EXIT_ERROR, GuestError
from qrpay_tools.guest.link import parse_link

HMAC = "ab" * 32


def test_the_link_the_pos_prints() -> None:
    signature = sign("dev-hmac-key-do-not-use-in-production", "abc123", "rest-1")
    link = parse_link(build_link("http://127.0.0.1:8080/go-pay/orders", "abc123", signature))
    assert (link.order_id, link.hmac) == ("abc123", signature)


@pytest.mark.parametrize(
    "text",
    [
        f"Link: http://h/go-pay/orders?order_id=o-1&hmac={HMAC}",
        f"  'https://yandex-go.ru/go-pay/orders?hmac={HMAC}&order_id=o-1'  ",
        f"order_id=o-1&hmac={HMAC}",
        f"http://h/go-pay/orders?order_id=o-1&hmac={HMAC.upper()}",
    ],
)
def test_copied_forms_of_the_link(text: str) -> None:
    link = parse_link(text)
    assert (link.order_id, link.hmac) == ("o-1", HMAC)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("http://h/go-pay/orders?order_id=o-1", "one order_id and one hmac"),
        (f"http://h/go-pay/orders?hmac={HMAC}", "one order_id and one hmac"),
        (f"http://h/?order_id=a&order_id=b&hmac={HMAC}", "one order_id and one hmac"),
        ("http://h/?order_id=o-1&hmac=abc", "64 hex digits"),
        (f"http://h/?order_id=o%201&hmac={HMAC}", "order_id is not valid"),
        (f"http://h/?order_id=&hmac={HMAC}", "order_id is not valid"),
    ],
)
def test_bad_links_are_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(GuestError) as caught:
        parse_link(text)
    assert fragment in caught.value.message
    assert caught.value.exit_code == EXIT_ERROR
    assert "\n" not in caught.value.line()
