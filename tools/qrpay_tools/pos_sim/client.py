"""The two POS calls of iiko-integration (SPEC 4.1), with failures turned into one line each."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pydantic import ValidationError

from qrpay.iiko_integration.schemas import BillLineType, CreateOrderResponse
from qrpay.kernel.http_client import failure_reason
from qrpay_tools.errors import first_problem
from qrpay_tools.pos_sim.errors import PosSimError

SERVICE = "iiko-integration"


class CreatedOrder(CreateOrderResponse):
    """iiko-integration's answer to ``POST /orders`` (its wire type), as the receipt reads it."""

    @property
    def text_lines(self) -> list[str]:
        return [line.value for line in self.bill_lines if line.type is BillLineType.TEXT]

    @property
    def deeplink(self) -> str | None:
        qr_codes = (line.value for line in self.bill_lines if line.type is BillLineType.QR_CODE)
        return next(qr_codes, None)


def connection_error_line(url: str, exc: BaseException) -> str:
    reason = failure_reason(exc)
    return f"error: cannot reach {SERVICE} at {url} ({reason}) — is `qrpay up` running?"


def http_error_line(
    status: int, body: bytes, *, api_key_name: str = "--api-key", client_id: str = ""
) -> str:
    code, message = _error_body(body)
    if status == 401:
        return f"error: {SERVICE} rejected the API key (401 {code or 'unauthorized'}) — check {api_key_name}"
    if status == 403:
        return (
            f"error: the API key is not allowed for restaurant {client_id!r} "
            f"(403 {code or 'forbidden'}) — check --client-id"
        )
    detail = f"{code}: {message}" if code and message else code or message or "no details"
    return f"error: {SERVICE} answered {status} ({detail})"


def _error_body(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return "", " ".join(text.split())[:200]
    if isinstance(data, dict):
        return str(data.get("code", "")), " ".join(str(data.get("message", "")).split())[:300]
    return "", ""


class PosClient:
    def __init__(self, base_url: str, api_key: str, *, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PosClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        assert self._session is not None, "use PosClient as an async context manager"
        url = f"{self.base_url}{path}"
        try:
            async with self._session.post(
                url, json=body, headers={"X-API-Key": self.api_key}
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(connection_error_line(self.base_url, exc)) from None
        if status != 200:
            raise HttpError(status, raw, str(body.get("client_id", "")))
        try:
            return json.loads(raw)
        except ValueError:
            raise PosSimError(
                f"error: {SERVICE} answered 200 with a body that is not JSON"
            ) from None

    async def create_order(self, body: dict[str, Any]) -> CreatedOrder:
        data = await self._post("/orders", body)
        try:
            return CreatedOrder.model_validate(data)
        except ValidationError as exc:
            problem = first_problem(exc)
            raise PosSimError(f"error: {SERVICE} answered an unexpected body ({problem})") from None

    async def order_status(self, client_id: str, order_id: str) -> str:
        data = await self._post("/orders/list", {"client_id": client_id, "orders": [order_id]})
        try:
            for entry in data["orders"]:
                if entry["id"] == order_id:
                    return str(entry["status"])
        except (KeyError, TypeError) as exc:
            raise PosSimError(
                f"error: {SERVICE} answered an unexpected body (missing {exc})"
            ) from None
        return "NOT_FOUND"

    async def order_payments(self, client_id: str, order_id: str) -> dict[str, Any] | None:
        """A split bill's payments of the order (``POST /orders/payments``); None if unknown."""
        data = await self._post("/orders/payments", {"client_id": client_id, "orders": [order_id]})
        for entry in data.get("orders", []) if isinstance(data, dict) else []:
            if isinstance(entry, dict) and entry.get("id") == order_id:
                return entry
        return None

    async def refund(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /orders/refund``: the refund as iiko-integration answered it."""
        data = await self._post("/orders/refund", body)
        if not isinstance(data, dict) or "status" not in data:
            raise PosSimError(f"error: {SERVICE} answered an unexpected refund body")
        return data


class HttpError(PosSimError):
    def __init__(self, status: int, body: bytes, client_id: str) -> None:
        super().__init__(http_error_line(status, body, client_id=client_id))
        self.status = status


class Unreachable(PosSimError):
    """The service did not answer at all (down, refused, timed out)."""

    status = None  # no answer, so no status: ``HttpError.status`` for the same reader
