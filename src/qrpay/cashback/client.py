"""The typed client other services use to call cashback."""

from __future__ import annotations

from qrpay.cashback.schemas import (
    AccrualIn,
    AccrualResult,
    BalanceResponse,
    HistoryResponse,
    OrderCashback,
    ReversalIn,
    ReversalResult,
)
from qrpay.kernel.http_client import ServiceClient


class CashbackClient(ServiceClient):
    downstream = "cashback"

    async def accrue(self, order_id: str, accrual: AccrualIn) -> AccrualResult:
        """One accrual per order: a repeat with the same body is a no-op, another body is 409."""
        path = f"/v1/accruals/{order_id}"
        return await self.fetch(AccrualResult, "PUT", path, endpoint="accrue", json=accrual)

    async def reverse(
        self, accrual_key: str, reversal_id: str, reversal: ReversalIn
    ) -> ReversalResult:
        """One reversal per ``reversal_id`` (a refund part): a repeat with the same body is a
        no-op, another body is 409 ``reversal_mismatch``; above what is left of the accrual
        409 ``reversal_exceeds_accrual``; no such accrual 404 ``accrual_not_found``."""
        path = f"/v1/cashback/accruals/{accrual_key}/reversals/{reversal_id}"
        return await self.fetch(ReversalResult, "PUT", path, endpoint="reverse", json=reversal)

    async def balance(self, user_id: str) -> BalanceResponse:
        path = f"/v1/users/{user_id}/balance"
        return await self.fetch(BalanceResponse, "GET", path, endpoint="balance")

    async def history(self, user_id: str) -> HistoryResponse:
        path = f"/v1/cashback/history/{user_id}"
        return await self.fetch(HistoryResponse, "GET", path, endpoint="history")

    async def order(self, order_id: str) -> OrderCashback:
        path = f"/v1/cashback/orders/{order_id}"
        return await self.fetch(OrderCashback, "GET", path, endpoint="order")
