"""The typed client of payments-eda's payer API (SPEC 4.3), as the guest's app calls it.

It imports only the kernel and ``payments_eda.schemas``. The requests are typed;
each call gives the answer as it came (any status below 500, with its headers),
because its caller reads ``X-Polling-Delay`` and the ``PaymentsCode`` of a refusal
itself; ``ServiceClient.body_of`` turns one into JSON or the matching ``QrpayError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from qrpay.kernel.http_client import RawAnswer, ServiceClient
from qrpay.payments_eda.schemas import (
    LANGUAGE_HEADER,
    PAYER_API_PREFIX,
    PHONE_ID_HEADER,
    YANDEX_UID_HEADER,
    PayRequest,
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


class PaymentsEdaClient(ServiceClient):
    downstream = "payments-eda"

    async def preorder(self, order_id: str, hmac: str, payer: Payer) -> RawAnswer:
        params = {"service": Service.RESTAURANT.value, "order_id": order_id, "hmac": hmac}
        return await self.exchange(
            "GET",
            f"{PAYER_API_PREFIX}/preorder",
            endpoint="preorder",
            idempotent=True,
            params=params,
            headers=payer.headers(),
        )

    async def pay(self, request: PayRequest, payer: Payer) -> RawAnswer:
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

    async def payment_status(self, order_id: str, hmac: str, payer: Payer) -> RawAnswer:
        return await self.exchange(
            "GET",
            f"{PAYER_API_PREFIX}/orders",
            endpoint="payment_status",
            idempotent=True,
            params={"order_id": order_id, "hmac": hmac},
            headers=payer.headers(),
        )
