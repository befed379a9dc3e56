"""The body of ``POST /orders`` from command-line flags or a JSON file."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from qrpay_tools.pos_sim.errors import PosSimError

DEFAULT_CLIENT_ID = "rest-1"
DEFAULT_CURRENCY = "RUB"
# A small bill that looks like a real table, so the demo needs no flags.
DEMO_ITEMS: tuple[tuple[str, Decimal], ...] = (
    ("Borscht", Decimal("450.00")),
    ("Pelmeni", Decimal("520.00")),
    ("Kompot", Decimal("150.00")),
)


@dataclass(frozen=True)
class BillItem:
    name: str
    amount: Decimal


@dataclass(frozen=True)
class OrderRequest:
    client_id: str
    internal_order_id: str
    currency: str
    amount: Decimal
    items: tuple[BillItem, ...]

    def body(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "internal_order_id": self.internal_order_id,
            "bill": {
                "currency": self.currency,
                "amount": format_money(self.amount),
                "elements": [
                    {"name": item.name, "amount": format_money(item.amount)} for item in self.items
                ],
            },
        }


def format_money(value: Decimal) -> str:
    # The wire wants a plain decimal string; at least two places reads like a receipt.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"{value:f}"


def random_order_id() -> str:
    return f"iiko-{secrets.token_hex(3)}"


def parse_amount(text: str, *, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise PosSimError(f"{what}: {text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise PosSimError(f"{what}: {text!r} is not a decimal amount")
    return value


def parse_item(text: str) -> BillItem:
    """``NAME=AMOUNT``; the name may itself contain ``=``, the amount is after the last one."""
    name, sep, amount = text.rpartition("=")
    name = name.strip()
    if not sep or not name or not amount.strip():
        raise PosSimError(f"--item {text!r}: expected NAME=AMOUNT, e.g. 'Borscht=450'")
    return BillItem(name=name, amount=parse_amount(amount, what=f"--item {name!r}"))


def _items_from_json(raw: Any, source: str) -> tuple[BillItem, ...]:
    if not isinstance(raw, list) or not raw:
        raise PosSimError(f"{source}: bill.elements must be a non-empty list")
    items = []
    for index, element in enumerate(raw):
        if not isinstance(element, dict) or "name" not in element or "amount" not in element:
            raise PosSimError(f"{source}: bill.elements[{index}] needs a name and an amount")
        items.append(
            BillItem(
                name=str(element["name"]),
                amount=parse_amount(str(element["amount"]), what=f"{source}: elements[{index}]"),
            )
        )
    return tuple(items)


@dataclass(frozen=True)
class BillFile:
    """What a bill file may fix; flags given on the command line win over it."""

    client_id: str | None
    internal_order_id: str | None
    currency: str | None
    amount: Decimal | None
    items: tuple[BillItem, ...]


def parse_bill_file(path: Path) -> BillFile:
    """A JSON file holding either the whole ``POST /orders`` body or just its ``bill``."""
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PosSimError(f"cannot read bill file {source}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PosSimError(f"bill file {source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PosSimError(f"bill file {source} must hold a JSON object")
    bill = data.get("bill", data)
    if not isinstance(bill, dict):
        raise PosSimError(f"{source}: bill must be a JSON object")
    amount = bill.get("amount")
    return BillFile(
        client_id=_optional_str(data.get("client_id")) if "bill" in data else None,
        internal_order_id=_optional_str(data.get("internal_order_id")) if "bill" in data else None,
        currency=_optional_str(bill.get("currency")),
        amount=None if amount is None else parse_amount(str(amount), what=f"{source}: amount"),
        items=_items_from_json(bill.get("elements"), source),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def build_order_request(
    *,
    client_id: str | None = None,
    order_id: str | None = None,
    amount: str | None = None,
    items: list[str] | None = None,
    currency: str | None = None,
    bill_file: Path | None = None,
) -> OrderRequest:
    from_file = parse_bill_file(bill_file) if bill_file is not None else None
    parsed_items: tuple[BillItem, ...]
    if items:
        parsed_items = tuple(parse_item(item) for item in items)
    elif from_file is not None:
        parsed_items = from_file.items
    else:
        parsed_items = tuple(BillItem(name, value) for name, value in DEMO_ITEMS)

    total: Decimal
    if amount is not None:
        total = parse_amount(amount, what="--amount")
    elif from_file is not None and from_file.amount is not None and not items:
        total = from_file.amount
    else:
        # Without an explicit amount the guest pays what the lines add up to.
        total = sum((item.amount for item in parsed_items), Decimal(0))
    if total <= 0:
        raise PosSimError(f"the amount to pay must be positive, got {total}")

    return OrderRequest(
        client_id=client_id or (from_file and from_file.client_id) or DEFAULT_CLIENT_ID,
        internal_order_id=order_id
        or (from_file and from_file.internal_order_id)
        or random_order_id(),
        currency=currency or (from_file and from_file.currency) or DEFAULT_CURRENCY,
        amount=total,
        items=parsed_items,
    )
