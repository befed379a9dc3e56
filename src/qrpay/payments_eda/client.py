"""The typed client of payments-eda's payer API (SPEC 4.3), as the guest's app calls it.

It imports only the kernel, ``payments_eda.schemas`` and eda's share choice. The requests are typed;
each call gives the answer as it came (any status below 500, with its headers),
because its caller reads ``X-Polling-Delay`` and the ``PaymentsCode`` of a refusal
itself; ``ServiceClient.body_of`` turns one into JSON or the matching ``QrpayError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from qrpay.eda.schemas import ShareChoice
from qrpay.kernel.http_client import Params, RawAnswer, ServiceClient
from qrpay.payments_eda.schemas import (
    LANGUAGE_HEADER,
    PAYER_API_PREFIX,
    PHONE_ID_HEADER,
    YANDEX_UID_HEADER,
    PayRequest,
    RefundRequest,
    RefundView,
    Service,
    SharePayRequest,
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
        # Never a second hold per order (not retried: see ``_post``).
        return await self._post("/orders", "pay", request.model_dump(mode="json"), payer)

    async def payment_status(
        self, order_id: str, hmac: str, payer: Payer, wait_ms: int = 0
    ) -> RawAnswer:
        """``wait_ms``: a long-poll, answered once the status changes or that much later."""
        params = {"order_id": order_id, "hmac": hmac}
        return await self._get("/orders", "payment_status", params, payer, wait_ms)

    # --- a split bill (issue 12) -------------------------------------------------------

    async def split(self, order_id: str, hmac: str, payer: Payer) -> RawAnswer:
        return await self._get(
            "/orders/split", "split", {"order_id": order_id, "hmac": hmac}, payer
        )

    async def quote(self, order_id: str, hmac: str, choice: ShareChoice, payer: Payer) -> RawAnswer:
        params = [("order_id", order_id), ("hmac", hmac), ("way", choice.way.value)]
        params += [("items", str(item)) for item in choice.items]
        if choice.parts is not None:
            params.append(("parts", str(choice.parts)))
        if choice.amount is not None:
            params.append(("amount", choice.amount))
        return await self._get("/orders/share/quote", "quote", params, payer)

    async def pay_share(self, request: SharePayRequest, payer: Payer) -> RawAnswer:
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._post("/orders/share", "pay_share", body, payer)

    async def share_status(
        self, order_id: str, hmac: str, share_id: str, payer: Payer, wait_ms: int = 0
    ) -> RawAnswer:
        params = {"order_id": order_id, "hmac": hmac, "share_id": share_id}
        return await self._get("/orders/share", "share_status", params, payer, wait_ms)

    async def _get(
        self, path: str, endpoint: str, params: Params, payer: Payer, wait_ms: int = 0
    ) -> RawAnswer:
        deadline_ms = None
        if wait_ms:
            params = [*_pairs(params), ("wait_ms", str(wait_ms))]
            deadline_ms = wait_ms + self._dependency().timeout_ms
        return await self.exchange(
            "GET",
            f"{PAYER_API_PREFIX}{path}",
            endpoint=endpoint,
            idempotent=True,
            params=params,
            headers=payer.headers(),
            deadline_ms=deadline_ms,
            try_timeout_ms=deadline_ms,
        )

    async def _post(
        self, path: str, endpoint: str, body: dict[str, Any], payer: Payer
    ) -> RawAnswer:
        """A payment's start: never retried here (a retry after a timeout could meet a new
        state), the caller polls the status instead."""
        return await self.exchange(
            "POST",
            f"{PAYER_API_PREFIX}{path}",
            endpoint=endpoint,
            idempotent=False,
            body=orjson.dumps(body),
            headers=payer.headers(),
        )


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


class RefundsClient(ServiceClient):
    """payments-eda's refund routes, as iiko-integration and the support tools call them."""

    downstream = "payments-eda"

    async def refund(self, request: RefundRequest) -> RefundView:
        # Idempotent on the refund id: a retry after a lost answer is the same refund.
        return await self.fetch(
            RefundView, "POST", "/v1/refunds", endpoint="refund", json=request, idempotent=True
        )

    async def refund_status(self, order_id: str, refund_id: str) -> RefundView:
        path = f"/v1/refunds/{order_id}/{refund_id}"
        return await self.fetch(RefundView, "GET", path, endpoint="refund_status")
