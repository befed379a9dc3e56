"""The typed client other services use to call cardstorage."""

from __future__ import annotations

from qrpay.cardstorage.schemas import (
    PaymentMethodIn,
    PaymentMethodInternal,
    PaymentMethodPublic,
    PaymentMethodsResponse,
)
from qrpay.kernel.http_client import ServiceClient


class CardstorageClient(ServiceClient):
    downstream = "cardstorage"

    async def list_for_user(self, user_id: str) -> list[PaymentMethodPublic]:
        body = await self.call(
            "GET",
            "/v1/payment-methods",
            endpoint="list_payment_methods",
            idempotent=True,
            params={"user_id": user_id},
        )
        return PaymentMethodsResponse.model_validate(body).payment_methods

    async def get_for_user(self, user_id: str, method_id: str) -> PaymentMethodInternal:
        """404 ``payment_method_not_found`` when it is not this user's."""
        body = await self.call(
            "GET",
            f"/v1/payment-methods/{method_id}",
            endpoint="get_payment_method",
            idempotent=True,
            params={"user_id": user_id},
        )
        return PaymentMethodInternal.model_validate(body)

    async def bind(self, method_id: str, method: PaymentMethodIn) -> PaymentMethodPublic:
        """Create or replace (PUT): safe to repeat."""
        body = await self.call(
            "PUT",
            f"/v1/payment-methods/{method_id}",
            endpoint="bind_payment_method",
            idempotent=True,
            json=method.model_dump(mode="json"),
        )
        return PaymentMethodPublic.model_validate(body)
