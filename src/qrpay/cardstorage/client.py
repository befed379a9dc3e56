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
        path, params = "/v1/payment-methods", {"user_id": user_id}
        answer = await self.fetch(
            PaymentMethodsResponse, "GET", path, endpoint="list_payment_methods", params=params
        )
        return answer.payment_methods

    async def get_for_user(self, user_id: str, method_id: str) -> PaymentMethodInternal:
        """404 ``payment_method_not_found`` when it is not this user's."""
        path, params = f"/v1/payment-methods/{method_id}", {"user_id": user_id}
        return await self.fetch(
            PaymentMethodInternal, "GET", path, endpoint="get_payment_method", params=params
        )

    async def bind(self, method_id: str, method: PaymentMethodIn) -> PaymentMethodPublic:
        """Create or replace (PUT): safe to repeat."""
        path = f"/v1/payment-methods/{method_id}"
        return await self.fetch(
            PaymentMethodPublic, "PUT", path, endpoint="bind_payment_method", json=method
        )
