"""The typed client other services use to call cashback."""

from __future__ import annotations

from qrpay.cashback.schemas import AccrualIn, AccrualResult, BalanceResponse, HistoryResponse
from qrpay.kernel.http_client import ServiceClient


class CashbackClient(ServiceClient):
    downstream = "cashback"

    async def accrue(self, order_id: str, accrual: AccrualIn) -> AccrualResult:
        """One accrual per order: a repeat with the same body is a no-op, another body is 409."""
        body = await self.call(
            "PUT",
            f"/v1/accruals/{order_id}",
            endpoint="accrue",
            idempotent=True,
            json=accrual.model_dump(mode="json"),
        )
        return AccrualResult.model_validate(body)

    async def balance(self, user_id: str) -> BalanceResponse:
        body = await self.call(
            "GET", f"/v1/users/{user_id}/balance", endpoint="balance", idempotent=True
        )
        return BalanceResponse.model_validate(body)

    async def history(self, user_id: str) -> HistoryResponse:
        body = await self.call(
            "GET", f"/v1/users/{user_id}/accruals", endpoint="history", idempotent=True
        )
        return HistoryResponse.model_validate(body)
