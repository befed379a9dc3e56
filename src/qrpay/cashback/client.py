"""The typed client other services use to call cashback."""

from __future__ import annotations

from qrpay.cashback.schemas import AccrualIn, AccrualResult, BalanceResponse, HistoryResponse
from qrpay.kernel.http_client import ServiceClient


class CashbackClient(ServiceClient):
    downstream = "cashback"

    async def accrue(self, order_id: str, accrual: AccrualIn) -> AccrualResult:
        """One accrual per order: a repeat with the same body is a no-op, another body is 409."""
        path = f"/v1/accruals/{order_id}"
        return await self.fetch(AccrualResult, "PUT", path, endpoint="accrue", json=accrual)

    async def balance(self, user_id: str) -> BalanceResponse:
        path = f"/v1/users/{user_id}/balance"
        return await self.fetch(BalanceResponse, "GET", path, endpoint="balance")

    async def history(self, user_id: str) -> HistoryResponse:
        path = f"/v1/users/{user_id}/accruals"
        return await self.fetch(HistoryResponse, "GET", path, endpoint="history")
