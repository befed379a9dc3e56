"""The guest's calls to payments-eda (SPEC 4.3), each failure turned into one line.

The calls go through the product's typed client (``qrpay.payments_eda.client``),
which sends the user's headers and ``order_id`` and ``hmac`` on every order call.
The answers are read leniently (only the fields the terminal shows), so a new
field in payments-eda's answer never breaks the guest.

A payment carries the guest's idempotency token (issue 18): one per run, sent on every
pay request of that payment, retries included, so a pay whose answer was lost is sent again
as the same payment. Only a new payment after a decline (another card) makes a new one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from qrpay.cardstorage.schemas import PaymentMethodPublic as Card
from qrpay.eda.schemas import BillElement, ShareChoice
from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import DependencyUnavailable
from qrpay.kernel.http_client import HttpSession, RawAnswer
from qrpay.kernel.metrics import ServiceMetrics
from qrpay.payments_eda.client import Payer, PaymentsEdaClient
from qrpay.payments_eda.schemas import (
    IDEMPOTENCY_TOKEN_HEADER,
    POLLING_DELAY_HEADER,
    CashbackView,
    PaymentMethodChoice,
    PaymentsCode,
    PayRequest,
    Service,
    SharePayRequest,
)
from qrpay_tools.errors import first_problem
from qrpay_tools.guest.errors import EXIT_ERROR, EXIT_NOT_PAYED, GuestError
from qrpay_tools.guest.link import OrderLink
from qrpay_tools.identity import dev_tools_ticket

SERVICE = PaymentsEdaClient.downstream
DEFAULT_POLLING_DELAY = 1.0
# A bad or missing X-Polling-Delay must neither hammer the service nor stall the guest.
MIN_POLLING_DELAY, MAX_POLLING_DELAY = 0.05, 30.0
# A pay without an answer (none came, or a 5xx) is sent again, with its token, this many
# times in all, pausing PAY_RETRY_PAUSE_SECONDS, then twice that, between them.
PAY_TRIES = 3
PAY_RETRY_PAUSE_SECONDS = 0.2


def new_token() -> str:
    """An idempotency token: 18 random bytes in base64url (24 of [A-Za-z0-9_-])."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class PayingGuest(Payer):
    """The guest on a pay request: the user's headers and the payment's token."""

    token: str = ""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), IDEMPOTENCY_TOKEN_HEADER: self.token}


@dataclass(frozen=True)
class Preorder:
    order_id: str
    restaurant: str
    currency: str
    amount: str
    lines: tuple[BillElement, ...]
    cashback: CashbackView | None
    cards: tuple[Card, ...]
    status: str | None = None
    bill_version: int | None = None


@dataclass(frozen=True)
class PaymentStatus:
    status: str
    message: str
    polling_delay: float
    # What refunds gave back of the payment (issue 19); None while none did.
    refunded: str | None = None


class HttpError(GuestError):
    def __init__(self, status: int, code: str, message: str, *, exit_code: int) -> None:
        detail = f"{code}: {message}" if code and message else code or message or "no details"
        super().__init__(f"{SERVICE} answered {status} ({detail})", exit_code=exit_code)
        self.status = status
        self.code = code
        self.detail = message


class Unreachable(GuestError):
    """No answer at all: down, refused, timed out."""

    status = None  # no answer, so no status: ``HttpError.status`` for the same reader


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
            BillElement(name=str(item["name"]), amount=str(item["amount"]))
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
            CashbackView(
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
    except ValidationError as exc:
        problem = first_problem(exc)
        raise GuestError(
            f"{SERVICE} answered the preorder with an unexpected body ({problem})"
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
        bill_version=data.get("bill_version")
        if isinstance(data.get("bill_version"), int)
        else None,
    )


# 409 codes that mean "not paid, and nothing is broken": the guest gets exit 1.
NOT_PAYED_CODES = frozenset(
    {PaymentsCode.ALREADY_PAID, PaymentsCode.ORDER_CLOSED, PaymentsCode.BILL_CHANGED}
)


def http_error(status: int, raw: bytes) -> HttpError:
    """payments-eda's answer other than 200, with the exit code it means for the guest."""
    code, message = _error_body(raw)
    if status == 404 and code in (PaymentsCode.ORDER_NOT_FOUND, ""):
        return HttpError(
            status,
            code or "not_found",
            "no such order: check that the link is complete and unchanged",
            exit_code=EXIT_ERROR,
        )
    exit_code = EXIT_NOT_PAYED if status == 409 and code in NOT_PAYED_CODES else EXIT_ERROR
    return HttpError(status, code, message, exit_code=exit_code)


class PaymentsApi:
    """payments-eda's payer API as the guest's app calls it."""

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str,
        language: str = "en",
        timeout_seconds: float = 10.0,
        session: HttpSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._payer = Payer(user_id=user_id, language=language)
        self.token = new_token()
        self._session = session or HttpSession(limit=4, ticket=dev_tools_ticket())
        self._owned = session is None
        # No retries here: the guest polls again on its own, and a payment is never repeated.
        dependency = DependencyConfig(
            base_url=self.base_url,
            timeout_ms=max(1, min(60_000, round(timeout_seconds * 1000))),
            retries=0,
        )
        self._client = PaymentsEdaClient(
            session=self._session,
            dependency=lambda: dependency,
            metrics=ServiceMetrics("guest"),
        )

    async def __aenter__(self) -> PaymentsApi:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._owned:
            await self._session.close()

    def new_payment(self) -> None:
        """The next pay is a new payment (the last one ended DECLINED): a new token."""
        self.token = new_token()

    async def _body(self, call: Awaitable[RawAnswer]) -> tuple[Any, Mapping[str, str]]:
        """The JSON of a 200 answer and its headers; anything else raises a ``GuestError``."""
        try:
            answer = await call
        except DependencyUnavailable as exc:
            raise self._unavailable(exc) from None
        return self._read(answer)

    async def _pay(
        self, send: Callable[[Payer], Awaitable[RawAnswer]]
    ) -> tuple[Any, Mapping[str, str]]:
        """``_body`` of a pay sent with the payment's token; sent again, with the same token,
        while its outcome is unknown (the same payment, never a second one)."""
        payer = PayingGuest(**asdict(self._payer), token=self.token)
        tries = 0
        while True:
            tries += 1
            try:
                answer = await send(payer)
            except DependencyUnavailable as exc:
                if tries == PAY_TRIES:
                    raise self._unavailable(exc) from None
                await asyncio.sleep(PAY_RETRY_PAUSE_SECONDS * 2 ** (tries - 1))
                continue
            return self._read(answer)

    def _read(self, answer: RawAnswer) -> tuple[Any, Mapping[str, str]]:
        if answer.status != 200:
            raise http_error(answer.status, answer.body)
        try:
            return json.loads(answer.body), answer.headers
        except ValueError:
            raise GuestError(f"{SERVICE} answered 200 with a body that is not JSON") from None

    def _unavailable(self, exc: DependencyUnavailable) -> GuestError:
        failure = exc.details or {}
        if "status" in failure:
            return http_error(int(failure["status"]), bytes(failure.get("body", b"")))
        reason = failure.get("reason", exc.message)
        return Unreachable(
            f"cannot reach {SERVICE} at {self.base_url} ({reason}) — is `qrpay up` running?"
        )

    async def preorder(self, link: OrderLink) -> Preorder:
        call = self._client.preorder(link.order_id, link.hmac, self._payer)
        data, _ = await self._body(call)
        return parse_preorder(link.order_id, data)

    async def pay(
        self, link: OrderLink, card_id: str, amount: str, preorder: Preorder | None = None
    ) -> PaymentStatus:
        """Pay what ``preorder`` showed: its currency and bill version are checked too."""
        try:
            request = PayRequest(
                **_order_and_card(link, card_id),
                amount=amount,
                currency=preorder.currency if preorder else None,
                bill_version=preorder.bill_version if preorder else None,
            )
        except ValidationError as exc:
            raise GuestError(f"cannot pay: {first_problem(exc)}") from None
        data, headers = await self._pay(lambda payer: self._client.pay(request, payer))
        return _status(data, headers)

    async def status(self, link: OrderLink, wait_ms: int = 0) -> PaymentStatus:
        """``wait_ms``: a long-poll, answered once the status changes or that much later."""
        call = self._client.payment_status(link.order_id, link.hmac, self._payer, wait_ms)
        data, headers = await self._body(call)
        return _status(data, headers)

    # --- a split bill ----------------------------------------------------------------

    async def split(self, link: OrderLink) -> dict[str, Any]:
        data, _ = await self._body(self._client.split(link.order_id, link.hmac, self._payer))
        if not isinstance(data, dict):
            raise GuestError(f"{SERVICE} answered an unexpected split view")
        return data

    async def quote(self, link: OrderLink, choice: ShareChoice) -> str:
        call = self._client.quote(link.order_id, link.hmac, choice, self._payer)
        data, _ = await self._body(call)
        return _text(data.get("amount") if isinstance(data, dict) else None)

    async def pay_share(
        self,
        link: OrderLink,
        card_id: str,
        choice: ShareChoice,
        price: str,
        preorder: Preorder,
        tip: Tip,
    ) -> tuple[str, PaymentStatus]:
        """Pay ``price``, the quote of ``choice``, and the tip: the share's id and status."""
        request = SharePayRequest(
            **_order_and_card(link, card_id),
            amount=price,
            currency=preorder.currency,
            share=choice,
            tip=tip.amount,
            tip_percent=tip.percent,
        )
        data, headers = await self._pay(lambda payer: self._client.pay_share(request, payer))
        return _text(data.get("share_id")), _status(data, headers)

    async def share_status(self, link: OrderLink, share_id: str, wait_ms: int = 0) -> PaymentStatus:
        call = self._client.share_status(link.order_id, link.hmac, share_id, self._payer, wait_ms)
        data, headers = await self._body(call)
        return _status(data, headers)


def _order_and_card(link: OrderLink, card_id: str) -> dict[str, Any]:
    """The fields every pay request of the guest starts with: the order and the card."""
    return {
        "service": Service.RESTAURANT,
        "order_id": link.order_id,
        "hmac": link.hmac,
        "payment_method": PaymentMethodChoice(type="card", id=card_id),
    }


@dataclass(frozen=True)
class Tip:
    amount: str | None = None
    percent: int | None = None


def _status(data: Any, headers: Mapping[str, str]) -> PaymentStatus:
    if not isinstance(data, dict) or "status" not in data:
        raise GuestError(f"{SERVICE} answered without a payment status")
    return PaymentStatus(
        status=str(data["status"]),
        message=_text(data.get("message")),
        polling_delay=parse_polling_delay(headers.get(POLLING_DELAY_HEADER)),
        refunded=_text(data.get("refunded")) or None,
    )
