"""The typed client of the payer API, for api-proxy and the guest CLI."""

from __future__ import annotations

from qrpay.kernel.http_client import ServiceClient
from qrpay.payments_eda.api import PREFIX
from qrpay.payments_eda.schemas import (
    LANGUAGE_HEADER,
    PHONE_ID_HEADER,
    YANDEX_UID_HEADER,
    PaymentStatusResponse,
    PayRequest,
    PreorderResponse,
)


def _user_headers(
    user_id: str | None, phone_id: str | None, language: str | None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if user_id:
        headers[YANDEX_UID_HEADER] = user_id
    if phone_id:
        headers[PHONE_ID_HEADER] = phone_id
    if language:
        headers[LANGUAGE_HEADER] = language
    return headers


class PaymentsEdaClient(ServiceClient):
    downstream = "payments-eda"

    async def preorder(
        self,
        order_id: str,
        hmac: str,
        *,
        user_id: str | None = None,
        phone_id: str | None = None,
        language: str | None = None,
    ) -> PreorderResponse:
        body = await self.call(
            "GET",
            f"{PREFIX}/preorder",
            endpoint="preorder",
            idempotent=True,
            params={"service": "restaurant", "order_id": order_id, "hmac": hmac},
            headers=_user_headers(user_id, phone_id, language),
        )
        return PreorderResponse.model_validate(body)

    async def pay(
        self,
        request: PayRequest,
        *,
        user_id: str,
        phone_id: str | None = None,
        language: str | None = None,
    ) -> PaymentStatusResponse:
        # Never a second hold per order, but a retry after a timeout could meet a new state:
        # not retried here; the caller polls the status instead.
        body = await self.call(
            "POST",
            f"{PREFIX}/orders",
            endpoint="pay",
            idempotent=False,
            json=request.model_dump(mode="json"),
            headers=_user_headers(user_id, phone_id, language),
        )
        return PaymentStatusResponse.model_validate(body)

    async def payment_status(
        self,
        order_id: str,
        hmac: str,
        *,
        user_id: str | None = None,
        phone_id: str | None = None,
        language: str | None = None,
    ) -> PaymentStatusResponse:
        """The status; the X-Polling-Delay header is not surfaced by ``ServiceClient``."""
        body = await self.call(
            "GET",
            f"{PREFIX}/orders",
            endpoint="payment_status",
            idempotent=True,
            params={"order_id": order_id, "hmac": hmac},
            headers=_user_headers(user_id, phone_id, language),
        )
        return PaymentStatusResponse.model_validate(body)
