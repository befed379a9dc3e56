"""The guest's choice of a share and a tip, as typed on the command line (issue 12).

``--share rest``, ``--share equal:3``, ``--share items:0,2`` (bill lines, counted from 0),
``--share amount:150``; ``--tip 10%`` (one of the restaurant's percentages) or ``--tip 50``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from qrpay.eda.schemas import ShareChoice, ShareWay
from qrpay_tools.guest.api import Tip
from qrpay_tools.guest.errors import GuestError


def parse_share(text: str) -> ShareChoice:
    way, _, arg = text.partition(":")
    try:
        if way == "rest" and not arg:
            return ShareChoice(way=ShareWay.REST)
        if way == "equal":
            return ShareChoice(way=ShareWay.EQUAL, parts=int(arg))
        if way == "items":
            return ShareChoice(way=ShareWay.ITEMS, items=tuple(int(i) for i in arg.split(",") if i))
        if way == "amount":
            return ShareChoice(way=ShareWay.AMOUNT, amount=arg)
    except (ValueError, ValidationError):
        pass
    raise GuestError(
        f"--share {text!r}: expected rest, equal:N, items:I,J (bill lines from 0) or amount:X"
    )


def parse_tip(text: str | None) -> Tip:
    if not text:
        return Tip()
    try:
        if text.endswith("%"):
            return Tip(percent=int(text[:-1]))
        Decimal(text)
    except (ValueError, InvalidOperation):
        raise GuestError(f"--tip {text!r}: expected a percentage like 10% or an amount") from None
    return Tip(amount=text)
