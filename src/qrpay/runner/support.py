"""The support tools (``qrpay support``, issue 19): what an on-call engineer reads and does
against a deployment's services, as the ``support`` identity.

The tools sign service tickets with the ``support`` private key of their own secdist
(``qrpay secrets generate`` writes ``support.yaml``; production refuses the development
key, ``kernel.production``) and call each service at its base URL from the config (or
one given). Each service decides what ``support`` may call (``allow("support")``):

- eda ``GET /v1/orders/{id}`` and ``GET /v1/orders/{id}/payments`` (the ledger);
- transactions ``GET /v1/invoices?order_id=`` (the order's invoices and operations);
- cashback ``GET /v1/cashback/orders/{id}`` (accruals and reversals; a cashback without
  the route answers 404 ``not_found``, shown as missing, not as a failure);
- payments-eda ``GET /v1/support/tasks?order_id=``, ``GET /v1/support/problems``,
  ``POST /v1/support/tasks/{job_id}/retry`` and ``POST /v1/refunds``.

Answers are kept as the services' JSON (a view for a person is the command's): a service
newer than these tools adds fields, which are shown as they come.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import SecretStr

from qrpay.kernel.tickets import (
    SUPPORT_IDENTITY,
    TICKET_HEADER,
    TicketInvalid,
    TicketSigner,
)
from qrpay.runner.config import QrpayConfig

# The services the tools call, by name as in the config's ``services``.
SUPPORTED = ("eda", "transactions", "payments-eda", "cashback")
DEFAULT_TIMEOUT_SECONDS = 10.0
# A cashback without the route answers FastAPI's plain 404.
ROUTE_MISSING = "not_found"


class SupportError(Exception):
    """A call that did not succeed: the service's own ``code`` when it answered one."""

    def __init__(self, service: str, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{service}: {code}: {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "code": self.code,
            "message": self.message,
        }


def base_urls(config: QrpayConfig, overrides: Mapping[str, str | None]) -> dict[str, str]:
    """Each service's base URL: the one given, else the config's."""
    return {
        name: (overrides.get(name) or config.dependency(name).base_url).rstrip("/")
        for name in SUPPORTED
    }


def default_refund_id(order_id: str, amount: str, tip: str, payment_id: str | None) -> str:
    """The refund id of a refund given without one: the same command run again (after a
    lost answer) names the same refund, never a second one. Another refund of the same
    amount needs ``--refund-id``."""
    text = "\n".join([order_id, amount, tip, payment_id or ""])
    return "support-" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SupportClient:
    """Calls the services as ``support``; one per command run (``async with``)."""

    urls: Mapping[str, str]
    keys: Sequence[SecretStr]
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _signer: TicketSigner = field(init=False)

    def __post_init__(self) -> None:
        keys = tuple(self.keys)
        self._signer = TicketSigner(SUPPORT_IDENTITY, lambda: keys, time.time)

    async def __aenter__(self) -> SupportClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """The service's JSON answer; SupportError for anything but a 2xx."""
        assert self._session is not None, "use SupportClient in `async with`"
        try:
            ticket = self._signer.ticket(service)
        except TicketInvalid:
            raise SupportError(
                service,
                None,
                "no_ticket_key",
                f"the secdist holds no private ticket key of {SUPPORT_IDENTITY}",
            ) from None
        url = f"{self.urls[service]}{path}"
        try:
            async with self._session.request(
                method, url, params=params, json=json, headers={TICKET_HEADER: ticket}
            ) as answer:
                raw = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise SupportError(
                service, None, f"{service.replace('-', '_')}_unreachable", f"{url}: {reason}"
            ) from None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if 200 <= status < 300:
            return body
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            raise SupportError(service, status, body["code"], str(body.get("message", "")))
        raise SupportError(service, status, f"http_{status}", raw[:200].decode(errors="replace"))

    # --- the commands ----------------------------------------------------------------

    async def order(self, order_id: str) -> dict[str, Any]:
        """One view of an order across the services; a section that failed is under
        ``errors`` (by section) and the others are still shown."""
        quoted = quote(order_id, safe="")
        calls = {
            "order": self.call("eda", "GET", f"/v1/orders/{quoted}"),
            "ledger": self.call("eda", "GET", f"/v1/orders/{quoted}/payments"),
            "invoices": self.call(
                "transactions", "GET", "/v1/invoices", params={"order_id": order_id}
            ),
            "cashback": self.call("cashback", "GET", f"/v1/cashback/orders/{quoted}"),
            "tasks": self.call(
                "payments-eda", "GET", "/v1/support/tasks", params={"order_id": order_id}
            ),
        }
        answers = await asyncio.gather(*calls.values(), return_exceptions=True)
        view: dict[str, Any] = {"order_id": order_id, "errors": {}, "missing": {}}
        for section, answer in zip(calls, answers, strict=True):
            if isinstance(answer, SupportError):
                view[section] = None
                if section == "cashback" and answer.status == 404:
                    # Not a failure: a cashback without the route, or no accrual there.
                    view["missing"][section] = (
                        "cashback has no GET /v1/cashback/orders/{order_id}"
                        if answer.code == ROUTE_MISSING
                        else f"{answer.code}: {answer.message}"
                    )
                else:
                    view["errors"][section] = answer.as_json()
            elif isinstance(answer, BaseException):
                raise answer
            else:
                view[section] = answer
        return view

    async def problems(self) -> Any:
        return await self.call("payments-eda", "GET", "/v1/support/problems")

    async def retry(self, job_id: int) -> Any:
        return await self.call("payments-eda", "POST", f"/v1/support/tasks/{job_id}/retry")

    async def refund(
        self,
        order_id: str,
        *,
        amount: str,
        tip: str,
        payment_id: str | None,
        refund_id: str,
    ) -> Any:
        """payments-eda's ``POST /v1/refunds`` (docs/refunds.md), source ``support``."""
        body: dict[str, Any] = {
            "order_id": order_id,
            "refund_id": refund_id,
            "amount": amount,
            "tip": tip,
            "source": "support",
        }
        if payment_id is not None:
            body["payment_id"] = payment_id
        return await self.call("payments-eda", "POST", "/v1/refunds", json=body)
