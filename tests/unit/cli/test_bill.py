from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from qrpay_tools.pos_sim.bill import (
    DEMO_ITEMS,
    BillItem,
    build_order_request,
    format_money,
    parse_bill_file,
    parse_item,
)
from qrpay_tools.pos_sim.errors import PosSimError


def test_item_flag_splits_on_the_last_equals_sign() -> None:
    assert parse_item("Borscht=450") == BillItem("Borscht", Decimal("450"))
    assert parse_item("  Tea = 1+1=99.5 ") == BillItem("Tea = 1+1", Decimal("99.5"))
    assert parse_item("Discount=-50") == BillItem("Discount", Decimal("-50"))


@pytest.mark.parametrize("text", ["Borscht", "=450", "Borscht=", "Borscht=abc", "Borscht=NaN"])
def test_bad_item_flag_is_one_clear_error(text: str) -> None:
    with pytest.raises(PosSimError) as caught:
        parse_item(text)
    assert "\n" not in caught.value.line()
    assert caught.value.line().startswith("error: --item")


def test_defaults_make_the_demo_bill_with_a_random_pos_id() -> None:
    request = build_order_request()
    body = request.body()
    assert body["client_id"] == "rest-1"
    assert body["internal_order_id"].startswith("iiko-")
    assert len(body["internal_order_id"]) == len("iiko-") + 6
    assert body["bill"]["currency"] == "RUB"
    assert [e["name"] for e in body["bill"]["elements"]] == [name for name, _ in DEMO_ITEMS]
    assert body["bill"]["amount"] == format_money(sum((a for _, a in DEMO_ITEMS), Decimal(0)))
    assert build_order_request().internal_order_id != request.internal_order_id


def test_items_and_amount_from_flags() -> None:
    request = build_order_request(
        client_id="rest-2",
        order_id="iiko-42",
        items=["Borscht=120", "Discount=-20"],
        amount="90.5",
        currency="RUB",
    )
    assert request.body() == {
        "client_id": "rest-2",
        "internal_order_id": "iiko-42",
        "bill": {
            "currency": "RUB",
            "amount": "90.50",
            "elements": [
                {"name": "Borscht", "amount": "120.00"},
                {"name": "Discount", "amount": "-20.00"},
            ],
        },
    }


def test_amount_defaults_to_the_sum_of_items() -> None:
    assert build_order_request(items=["A=10.25", "B=5"]).body()["bill"]["amount"] == "15.25"


def test_non_positive_total_is_refused() -> None:
    with pytest.raises(PosSimError, match="positive"):
        build_order_request(items=["Discount=-5"])


def test_bill_file_with_the_whole_body(tmp_path: Path) -> None:
    path = tmp_path / "order.json"
    path.write_text(
        json.dumps(
            {
                "client_id": "rest-2",
                "internal_order_id": "iiko-7",
                "bill": {
                    "currency": "RUB",
                    "amount": "100",
                    "elements": [{"name": "Борщ", "amount": "120"}],
                },
            }
        ),
        encoding="utf-8",
    )
    request = build_order_request(bill_file=path)
    assert request.client_id == "rest-2"
    assert request.internal_order_id == "iiko-7"
    assert request.amount == Decimal("100")
    assert request.items == (BillItem("Борщ", Decimal("120")),)
    # Flags given on the command line win over the file.
    assert build_order_request(bill_file=path, client_id="rest-1").client_id == "rest-1"


def test_bill_file_with_just_the_bill(tmp_path: Path) -> None:
    path = tmp_path / "bill.json"
    path.write_text(json.dumps({"amount": "7", "elements": [{"name": "Tea", "amount": 7}]}))
    parsed = parse_bill_file(path)
    assert parsed.client_id is None
    assert parsed.amount == Decimal("7")
    request = build_order_request(bill_file=path)
    assert request.client_id == "rest-1"
    assert request.currency == "RUB"
    assert request.body()["bill"]["elements"] == [{"name": "Tea", "amount": "7.00"}]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"bill": {"amount": "1"}}', "elements"),
        ('{"elements": [{"name": "x"}]}', "elements[0]"),
        ('{"elements": [{"name": "x", "amount": "ten"}]}', "not a decimal"),
    ],
)
def test_bad_bill_file_is_one_clear_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bill.json"
    path.write_text(content)
    with pytest.raises(PosSimError) as caught:
        parse_bill_file(path)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.line()


def test_missing_bill_file(tmp_path: Path) -> None:
    with pytest.raises(PosSimError, match="cannot read bill file"):
        parse_bill_file(tmp_path / "absent.json")
