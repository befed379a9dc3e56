"""`qrpay up --public-url`: the deep links point at the address a phone can reach."""

from __future__ import annotations

import pytest

from qrpay.runner.config import parse_config
from qrpay.runner.embedded import EmbeddedError, embedded_config, payer_page_url, public_base


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://192.168.1.20:8080", "http://192.168.1.20:8080"),
        ("http://192.168.1.20:8080/", "http://192.168.1.20:8080"),
        (" https://pay.example.test/qrpay/ ", "https://pay.example.test/qrpay"),
        ("http://[fe80::1]:8080", "http://[fe80::1]:8080"),
    ],
)
def test_public_base_is_normalized(given: str, expected: str) -> None:
    assert public_base(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "192.168.1.20:8080",
        "ftp://host",
        "http://",
        "http://host:99999",
        "http://host:8080/?x=1",
        "http://user:pw@host:8080",
        "http://host#frag",
    ],
)
def test_bad_public_urls_are_refused(given: str) -> None:
    with pytest.raises(EmbeddedError, match="--public-url"):
        public_base(given)


def test_the_deep_link_base_follows_the_public_url() -> None:
    data = embedded_config({}, "127.0.0.1", 8080, "http://192.168.1.20:8080")
    config = parse_config(data)
    assert config.deeplink.base == "http://192.168.1.20:8080/go-pay/orders"
    # The services still reach each other locally.
    assert config.dependency("payments-eda").base_url == "http://127.0.0.1:8082"


def test_without_a_public_url_the_payer_page_is_local() -> None:
    assert payer_page_url("0.0.0.0", 9000) == "http://127.0.0.1:9000/go-pay/orders"
    assert embedded_config({}, "127.0.0.1", 8080)["deeplink"]["base"] == (
        "http://127.0.0.1:8080/go-pay/orders"
    )
