from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from qrpay.eda.schemas import Bill, OrderStatus, OrderStatusView
from qrpay.iiko_integration import domain
from qrpay.iiko_integration.schemas import PosStatus
from qrpay.kernel import deeplink
from qrpay.kernel.errors import InvalidInput, QrpayError
from qrpay.restaurants import Restaurant
from tests.support.services import dev_config

TEMPLATES = {"ru": "Кэшбэк {rate}!", "en": "Get {rate} back!"}
KEY_A = SecretStr("first-key-0123456789")
KEY_B = SecretStr("second-key-0123456789")


def restaurant(**overrides: object) -> Restaurant:
    data: dict[str, object] = {
        "client_id": "rest-1",
        "name": "R",
        "zone": "moscow",
        "cashback_rate": "30",
    }
    data.update(overrides)
    return Restaurant.model_validate(data)


def bill(amount: str = "100", currency: str = "RUB") -> Bill:
    return Bill(currency=currency, amount=amount, elements=[{"name": "x", "amount": amount}])


@pytest.mark.parametrize(
    ("language", "rate", "expected"),
    [
        ("ru", "30", "Кэшбэк 30%!"),
        ("en", "12.5", "Get 12.5% back!"),
        ("de", "15", "Кэшбэк 15%!"),  # no template for the language: Russian
    ],
)
def test_bill_text_uses_language_template_and_rate(language: str, rate: str, expected: str) -> None:
    assert (
        domain.bill_text(TEMPLATES, restaurant(language=language, cashback_rate=rate)) == expected
    )


def test_dev_config_text_matches_spec() -> None:
    config = dev_config()
    text = domain.bill_text(config.bill_text_templates, config.restaurant("rest-1"))  # type: ignore[arg-type]
    assert text == "Оплати через yandex-go и получи кэшбэк 30%!"


def test_qr_link_is_signed_with_first_key_and_verifies_with_all() -> None:
    link = domain.qr_link("https://x.test/go-pay/orders", (KEY_A, KEY_B), "ord-1", "rest-1")
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://x.test/go-pay/orders"
    query = parse_qs(parts.query)
    assert query["order_id"] == ["ord-1"]
    signature = query["hmac"][0]
    assert signature == deeplink.sign(KEY_A, "ord-1", "rest-1")
    # After rotation the old signing key is second in the list and still verifies.
    assert deeplink.verify((KEY_B, KEY_A), "ord-1", "rest-1", signature)
    assert not deeplink.verify((KEY_B,), "ord-1", "rest-1", signature)
    assert not deeplink.verify((KEY_A,), "ord-1", "rest-2", signature)


def test_qr_link_without_keys_fails_loudly() -> None:
    with pytest.raises(QrpayError) as error:
        domain.qr_link("https://x.test", (), "ord-1", "rest-1")
    assert error.value.code == "hmac_key_missing"


def view(order_id: str, status: OrderStatus, client_id: str = "rest-1") -> OrderStatusView:
    return OrderStatusView(order_id=order_id, client_id=client_id, status=status)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (OrderStatus.WAITING, PosStatus.WAITING),
        (OrderStatus.PAYMENT_IN_PROGRESS, PosStatus.WAITING),
        (OrderStatus.PAYED, PosStatus.PAYED),
        (OrderStatus.CANCELED, PosStatus.CANCELED),
    ],
)
def test_pos_status_mapping(status: OrderStatus, expected: PosStatus) -> None:
    assert domain.pos_status(view("o", status), "rest-1") is expected


def test_pos_status_hides_missing_and_other_restaurants_orders() -> None:
    assert domain.pos_status(None, "rest-1") is PosStatus.NOT_FOUND
    assert (
        domain.pos_status(view("o", OrderStatus.PAYED, "rest-2"), "rest-1") is PosStatus.NOT_FOUND
    )


def test_pos_statuses_keep_request_order_and_duplicates() -> None:
    found = [view("b", OrderStatus.PAYED), view("a", OrderStatus.WAITING)]
    by_id = {view.order_id: view for view in found}
    assert domain.pos_statuses(["a", "zzz", "b", "a"], by_id, "rest-1") == [
        ("a", PosStatus.WAITING),
        ("zzz", PosStatus.NOT_FOUND),
        ("b", PosStatus.PAYED),
        ("a", PosStatus.WAITING),
    ]


def test_order_restaurant_rules() -> None:
    config = dev_config()
    assert domain.order_restaurant(config, "rest-1").client_id == "rest-1"
    with pytest.raises(InvalidInput) as unknown:
        domain.order_restaurant(config, "nope")
    assert unknown.value.code == "unknown_restaurant"
    with pytest.raises(InvalidInput) as disabled:
        domain.order_restaurant(config, "rest-3")
    assert disabled.value.code == "restaurant_disabled"


@pytest.mark.parametrize(
    ("the_bill", "code"),
    [
        (bill(currency="USD"), "currency_not_accepted"),
        (bill(amount="1000.01"), "amount_too_large"),
    ],
)
def test_check_bill_rejects(the_bill: Bill, code: str) -> None:
    with pytest.raises(InvalidInput) as error:
        domain.check_bill(restaurant(), the_bill, Decimal("1000"))
    assert error.value.code == code


def test_check_bill_accepts_the_maximum() -> None:
    domain.check_bill(restaurant(), bill(amount="1000.00"), Decimal("1000"))


def test_zone_restaurants_only_enabled_in_zone() -> None:
    assert [r.client_id for r in domain.zone_restaurants(dev_config(), "moscow")] == ["rest-1"]
    assert [r.client_id for r in domain.zone_restaurants(dev_config(), "spb")] == ["rest-2"]
    assert domain.zone_restaurants(dev_config(), "kazan") == []
