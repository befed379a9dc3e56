"""The guest's calls to payments-eda (SPEC 4.3) and cashback, each failure turned into one line.

The guest talks to payments-eda the way the app does through api-proxy: the
user's headers on every call, ``order_id`` and ``hmac`` on every order call.
The answers are read leniently (only the fields the terminal shows), so a new
field in payments-eda's answer never breaks the guest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from qrpay_tools.guest.errors import EXIT_ERROR, EXIT_NOT_PAYED, GuestError
from qrpay_tools.guest.link import OrderLink

SERVICE = "payments-eda"
PREORDER = "/4.0/payments/v1/preorder"
ORDERS = "/4.0/payments/v1/orders"
DEFAULT_POLLING_DELAY = 1.0
# A bad or missing X-Polling-Delay must neither hammer the service nor stall the guest.
MIN_POLLING_DELAY, MAX_POLLING_DELAY = 0.05, 30.0


@dataclass(frozen=True)
class BillLine:
    name: str
    amount: str


@dataclass(frozen=True)
class Card:
    id: str
    type: str
    system: str
    mask: str
    expiry: str
    available: bool


@dataclass(frozen=True)
class Cashback:
    rate: str
    amount: str
    currency: str


@dataclass(frozen=True)
class Preorder:
    order_id: str
    restaurant: str
    currency: str
    amount: str
    lines: tuple[BillLine, ...]
    cashback: Cashback | None
    cards: tuple[Card, ...]
    status: str | None = None


@dataclass(frozen=True)
class PaymentStatus:
    status: str
    message: str
    polling_delay: float


class HttpError(GuestError):
    def __init__(self, status: int, code: str, message: str, *, exit_code: int) -> None:
        detail = f"{code}: {message}" if code and message else code or message or "no details"
        super().__init__(f"{SERVICE} answered {status} ({detail})", exit_code=exit_code)
        self.status = status
        self.code = code
        self.detail = message


class Unreachable(GuestError):
    """No answer at all: down, refused, timed out."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return " ".join(str(text).split()).lower()


def _error_body(raw: bytes) -> tuple[str, str]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", " ".join(raw.decode("utf-8", "replace").split())[:200]
    if isinstance(data, dict):
        code = str(data.get("code", ""))
        return code, " ".join(str(data.get("message", "")).split())[:300]
    return "", ""


def parse_polling_delay(value: str | None) -> float:
    if value is None:
        return DEFAULT_POLLING_DELAY
    try:
        seconds = float(Decimal(value.strip()))
    except (InvalidOperation, ValueError):
        return DEFAULT_POLLING_DELAY
    if seconds != seconds:  # NaN
        return DEFAULT_POLLING_DELAY
    return min(MAX_POLLING_DELAY, max(MIN_POLLING_DELAY, seconds))


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def parse_preorder(order_id: str, data: Any) -> Preorder:
    """The preorder answer: the bill, the restaurant, the cashback offer and the user's cards."""
    if not isinstance(data, dict):
        raise GuestError(f"{SERVICE} answered the preorder with a body that is not an object")
    bill: dict[str, Any] = data["bill"] if isinstance(data.get("bill"), dict) else data
    restaurant = data.get("restaurant")
    if isinstance(restaurant, dict):
        restaurant_name = _text(restaurant.get("name"))
    else:
        restaurant_name = _text(restaurant or data.get("restaurant_name") or bill.get("restaurant"))
    try:
        currency = str(bill["currency"])
        amount = str(bill["amount"])
        lines = tuple(
            BillLine(name=str(item["name"]), amount=str(item["amount"]))
            for item in bill.get("elements") or ()
        )
        methods = data.get("payment_methods") or []
        cards = tuple(
            Card(
                id=str(method["id"]),
                type=_text(method.get("type"), "card"),
                system=_text(method.get("system")),
                mask=_text(method.get("mask") or method.get("number")),
                expiry=_text(method.get("expiry")),
                available=bool(method.get("available", True)),
            )
            for method in methods
        )
        offer = data.get("cashback")
        cashback = (
            Cashback(
                rate=_text(offer.get("rate")),
                amount=_text(offer.get("amount")),
                currency=_text(offer.get("currency"), currency),
            )
            if isinstance(offer, dict)
            else None
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise GuestError(
            f"{SERVICE} answered the preorder with an unexpected body (bad or missing {exc})"
        ) from None
    status = data.get("status")
    return Preorder(
        order_id=order_id,
        restaurant=restaurant_name,
        currency=currency,
        amount=amount,
        lines=lines,
        cashback=cashback,
        cards=cards,
        status=None if status is None else str(status),
    )


# 409 codes that mean "not paid, and nothing is broken": the guest gets exit 1.
NOT_PAYED_CODES = frozenset({"already_paid", "order_closed", "bill_changed"})


class PaymentsApi:
    """payments-eda's payer API as the guest's app calls it."""

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str,
        language: str = "en",
        timeout_seconds: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"X-Yandex-UID": user_id, "X-Request-Language": language}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = session
        self._owned = session is None

    async def __aenter__(self) -> PaymentsApi:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._owned and self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        assert self._session is not None, "use PaymentsApi as an async context manager"
        try:
            async with self._session.request(
                method, self.base_url + path, params=params, json=body, headers=self._headers
            ) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers.copy()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(
                f"cannot reach {SERVICE} at {self.base_url} ({_reason(exc)}) — is `qrpay up` running?"
            ) from None
        if status != 200:
            code, message = _error_body(raw)
            if status == 404 and code in ("order_not_found", ""):
                raise HttpError(
                    status,
                    code or "not_found",
                    "no such order: check that the link is complete and unchanged",
                    exit_code=EXIT_ERROR,
                )
            exit_code = EXIT_NOT_PAYED if status == 409 and code in NOT_PAYED_CODES else EXIT_ERROR
            raise HttpError(status, code, message, exit_code=exit_code)
        try:
            return json.loads(raw), headers
        except ValueError:
            raise GuestError(f"{SERVICE} answered 200 with a body that is not JSON") from None

    async def preorder(self, link: OrderLink) -> Preorder:
        data, _ = await self._request(
            "GET",
            PREORDER,
            params={"service": "restaurant", "order_id": link.order_id, "hmac": link.hmac},
        )
        return parse_preorder(link.order_id, data)

    async def pay(self, link: OrderLink, card_id: str, amount: str) -> PaymentStatus:
        data, headers = await self._request(
            "POST",
            ORDERS,
            body={
                "service": "restaurant",
                "order_id": link.order_id,
                "hmac": link.hmac,
                "payment_method": {"type": "card", "id": card_id},
                "amount": amount,
            },
        )
        return _status(data, headers)

    async def status(self, link: OrderLink) -> PaymentStatus:
        data, headers = await self._request(
            "GET", ORDERS, params={"order_id": link.order_id, "hmac": link.hmac}
        )
        return _status(data, headers)


def _status(data: Any, headers: Mapping[str, str]) -> PaymentStatus:
    if not isinstance(data, dict) or "status" not in data:
        raise GuestError(f"{SERVICE} answered without a payment status")
    return PaymentStatus(
        status=str(data["status"]),
        message=_text(data.get("message")),
        polling_delay=parse_polling_delay(headers.get("X-Polling-Delay")),
    )
