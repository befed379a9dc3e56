"""Every input rule of POST /orders: its status and code, and no eda call for bad input."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tests.support.component.iiko_integration import HEADERS, Started, valid_order
from tests.support.mockserver import MockServer

ELEMENT = {"name": "Borscht", "amount": "120"}


def with_bill(**bill: Any) -> dict[str, Any]:
    body = valid_order()
    body["bill"].update(bill)
    return body


def with_element(**element: Any) -> dict[str, Any]:
    return with_bill(elements=[{**ELEMENT, **element}])


def without(path: tuple[str, ...]) -> dict[str, Any]:
    body = valid_order()
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def json_body(value: Any) -> bytes:
    return orjson.dumps(value)


CASES: list[tuple[str, bytes, int, str | None]] = [
    ("empty client_id", json_body(valid_order(client_id="")), 400, None),
    ("client_id over 64", json_body(valid_order(client_id="r" * 65)), 400, None),
    ("unknown restaurant", json_body(valid_order(client_id="rest-x")), 403, "forbidden_client"),
    ("empty internal_order_id", json_body(valid_order(internal_order_id="")), 400, None),
    ("internal_order_id over 128", json_body(valid_order(internal_order_id="i" * 129)), 400, None),
    ("unknown currency", json_body(with_bill(currency="XXX")), 400, "unknown_currency"),
    ("lowercase currency", json_body(with_bill(currency="rub")), 400, None),
    ("currency not accepted", json_body(with_bill(currency="USD")), 400, "currency_not_accepted"),
    ("negative amount", json_body(with_bill(amount="-1")), 400, "invalid_amount"),
    ("zero amount", json_body(with_bill(amount="0")), 400, "amount_not_positive"),
    ("non-numeric amount", json_body(with_bill(amount="ten")), 400, "invalid_amount"),
    ("exponent amount", json_body(with_bill(amount="1e3")), 400, "invalid_amount"),
    ("too many decimals", json_body(with_bill(amount="1.234")), 400, "invalid_amount"),
    ("amount with a trailing newline", json_body(with_bill(amount="100\n")), 400, "invalid_amount"),
    ("NUL in internal_order_id", json_body(valid_order(internal_order_id="i\x00")), 400, None),
    ("amount above max", json_body(with_bill(amount="1000000.01")), 400, "amount_too_large"),
    ("number amount", json_body(with_bill(amount=100)), 400, None),
    ("float amount", json_body(with_bill(amount=100.5)), 400, None),
    ("no elements", json_body(with_bill(elements=[])), 400, None),
    ("501 elements", json_body(with_bill(elements=[ELEMENT] * 501)), 400, None),
    ("empty element name", json_body(with_element(name="")), 400, None),
    ("element name over 256", json_body(with_element(name="n" * 257)), 400, None),
    ("element amount number", json_body(with_element(amount=5)), 400, None),
    ("element amount exponent", json_body(with_element(amount="5e1")), 400, "invalid_amount"),
    ("element amount too precise", json_body(with_element(amount="0.001")), 400, "invalid_amount"),
    (
        "element amount, trailing newline",
        json_body(with_element(amount="5\n")),
        400,
        "invalid_amount",
    ),
    ("NUL in element name", json_body(with_element(name="Bor\x00scht")), 400, None),
    ("client_id not a string", json_body(valid_order(client_id=1)), 400, None),
    ("bill not an object", json_body(valid_order(bill="100")), 400, None),
    ("elements not a list", json_body(with_bill(elements={"name": "x"})), 400, None),
    ("unknown top-level field", json_body(valid_order(table=5)), 400, "unknown_field"),
    ("unknown bill field", json_body(with_bill(tip="10")), 400, "unknown_field"),
    ("unknown element field", json_body(with_element(qty=2)), 400, "unknown_field"),
    ("missing bill", json_body(without(("bill",))), 400, "missing_field"),
    ("missing amount", json_body(without(("bill", "amount"))), 400, "missing_field"),
    ("body is a list", json_body([valid_order()]), 400, None),
    ("body not JSON", b'{"client_id": "rest-1",', 400, "invalid_json"),
    ("empty body", b"", 400, None),
    (
        "body over 1 MiB",
        json_body(with_element(name="n" * 200)).replace(b'"n', b'"' + b" " * (1024 * 1024) + b"n"),
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("raw", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_invalid_create_is_rejected_without_calling_eda(
    iiko: Started, mockserver: MockServer, raw: bytes, status: int, code: str | None
) -> None:
    _, client = iiko
    create = mockserver.json_handler("/v1/orders", {"unexpected": "call"})

    response = await client.post(
        "/orders", content=raw, headers={**HEADERS, "Content-Type": "application/json"}
    )

    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}
    if code is not None:
        assert body["code"] == code
    assert create.times_called == 0


async def test_valid_edge_values_are_accepted(iiko: Started, mockserver: MockServer) -> None:
    """The other side of the table: the limits themselves pass and reach eda."""
    _, client = iiko

    @mockserver.handler("/v1/orders")
    async def create(request: Any) -> dict[str, Any]:
        from tests.support.component.iiko_integration import eda_order

        return {"order": eda_order(await request.json()), "outcome": "created"}

    body = valid_order(client_id="rest-2", internal_order_id="i" * 128)
    body["bill"] = {
        "currency": "RUB",
        "amount": "1000000.00",
        "elements": [{"name": "n" * 256, "amount": "0"}] * 499 + [{"name": "x", "amount": "-0.5"}],
    }
    response = await client.post("/orders", json=copy.deepcopy(body), headers=HEADERS)
    assert response.status_code == 200, response.text
    assert create.times_called == 1


async def test_restaurant_rules_for_a_key_allowed_for_them(
    iiko_context: Any, mockserver: MockServer
) -> None:
    from tests.support.services import dev_secdist, running_service

    key = "wide-key-0123456789abcdef"
    secdist = dev_secdist(api_keys=[{"key": key, "client_ids": ["rest-1", "rest-3", "ghost"]}])
    create = mockserver.json_handler("/v1/orders", {"unexpected": "call"})
    async with running_service(iiko_context(secdist=secdist)) as (_app, client):
        for client_id, code in (("ghost", "unknown_restaurant"), ("rest-3", "restaurant_disabled")):
            response = await client.post(
                "/orders", json=valid_order(client_id=client_id), headers={"X-API-Key": key}
            )
            assert response.status_code == 400
            assert response.json()["code"] == code
    assert create.times_called == 0
