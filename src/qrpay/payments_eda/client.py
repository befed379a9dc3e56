"""The typed client of payments-eda's payer API (SPEC 4.3), as the guest's app calls it.

It imports only the kernel and ``payments_eda.schemas``. Each call comes in two
forms: ``*_answer`` gives the answer as it came (any status below 500, with its
headers: a tool reads ``X-Polling-Delay`` and the error codes itself), the plain
form validates it as the schema's model (a 4xx becomes the matching ``QrpayError``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from qrpay.kernel.http_client import RawAnswer, ServiceClient
from qrpay.payments_eda.schemas import (
    LANGUAGE_HEADER,
    PAYER_API_PREFIX,
    PHONE_ID_HEADER,
    POLLING_DELAY_HEADER,
    YANDEX_UID_HEADER,
    PaymentStatusResponse,
    PayRequest,
    PreorderResponse,
    Service,
)


@dataclass(frozen=True)
class Payer:
    """Who calls: the headers the app sends with every call."""

    user_id: str | None = None
    phone_id: str | None = None
    language: str | None = None

    def headers(self) -> dict[str, str]:
        named = (
            (YANDEX_UID_HEADER, self.user_id),
            (PHONE_ID_HEADER, self.phone_id),
            (LANGUAGE_HEADER, self.language),
        )
        return {name: value for name, value in named if value}


@dataclass(frozen=True)
class Polled:
    """A payment status and how long to wait before asking again (``X-Polling-Delay``)."""

    status: PaymentStatusResponse
    polling_delay: str | None


def polling_delay(answer: RawAnswer) -> str | None:
    return answer.headers.get(POLLING_DELAY_HEADER)


class PaymentsEdaClient(ServiceClient):
    downstream = "payments-eda"

    async def preorder_answer(self, order_id: str, hmac: str, payer: Payer) -> RawAnswer:
        params = {"service": Service.RESTAURANT.value, "order_id": order_id, "hmac": hmac}
        return await self.exchange(
            "GET",
            f"{PAYER_API_PREFIX}/preorder",
            endpoint="preorder",
            idempotent=True,
            params=params,
            headers=payer.headers(),
        )

    async def pay_answer(self, request: PayRequest, payer: Payer) -> RawAnswer:
        # Never a second hold per order, but a retry after a timeout could meet a new state:
        # not retried here; the caller polls the status instead.
        return await self.exchange(
            "POST",
            f"{PAYER_API_PREFIX}/orders",
            endpoint="pay",
            idempotent=False,
            body=orjson.dumps(request.model_dump(mode="json")),
            headers=payer.headers(),
        )

    async def status_answer(self, order_id: str, hmac: str, payer: Payer) -> RawAnswer:
        return await self.exchange(
            "GET",
            f"{PAYER_API_PREFIX}/orders",
            endpoint="payment_status",
            idempotent=True,
            params={"order_id": order_id, "hmac": hmac},
            headers=payer.headers(),
        )

    async def preorder(self, order_id: str, hmac: str, payer: Payer) -> PreorderResponse:
        answer = await self.preorder_answer(order_id, hmac, payer)
        return PreorderResponse.model_validate(self.body_of(answer))

    async def pay(self, request: PayRequest, payer: Payer) -> Polled:
        return self._polled(await self.pay_answer(request, payer))

    async def payment_status(self, order_id: str, hmac: str, payer: Payer) -> Polled:
        return self._polled(await self.status_answer(order_id, hmac, payer))

    def _polled(self, answer: RawAnswer) -> Polled:
        status = PaymentStatusResponse.model_validate(self.body_of(answer))
        return Polled(status, polling_delay(answer))
