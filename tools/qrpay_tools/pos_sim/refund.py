"""`qrpay-tools pos-refund`: the POS refunds a guest (issue 19) and prints what it got back,
then the order's payments with what each had refunded, as the POS records them."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from qrpay_tools.pos_sim.client import PosClient

# How often the refund's outcome is asked for while it is still under way.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RefundOptions:
    url: str
    api_key: str
    client_id: str
    order_id: str
    amount: str
    tip: str
    payment_id: str | None
    refund_id: str | None
    timeout: float


def refund_lines(refund: dict[str, Any]) -> list[str]:
    currency = refund.get("currency", "")
    lines = [
        f"refund {refund.get('refund_id')}: {refund.get('status')}"
        f" · {refund.get('amount')} {currency}, tip {refund.get('tip')} {currency}"
    ]
    for part in refund.get("parts", []):
        lines.append(
            f"  payment {part.get('payment_id')}: {part.get('amount')} {currency}"
            f" + tip {part.get('tip')} · {part.get('state')}"
        )
    return lines


def payments_lines(entry: dict[str, Any]) -> list[str]:
    currency = entry.get("currency") or ""
    lines = [
        f"order {entry.get('id')}: {entry.get('status')} · paid {entry.get('paid')} {currency}"
        f", refunded {entry.get('refunded', '0')} {currency}"
    ]
    for payment in entry.get("payments", []):
        lines.append(
            f"  payment {payment.get('id')}: {payment.get('amount')} {currency}"
            f", refunded {payment.get('refunded', '0')} {currency}"
        )
    return lines


async def run_refund(options: RefundOptions, console: Console) -> int:
    """Refund, repeat the same request (same refund id: idempotent) until no part is under
    way or ``timeout`` passes; 0 when refunded, 1 otherwise."""
    body = {
        "client_id": options.client_id,
        "order_id": options.order_id,
        "refund_id": options.refund_id or f"pos-{secrets.token_hex(6)}",
        "amount": options.amount,
        "tip": options.tip,
    }
    if options.payment_id:
        body["payment_id"] = options.payment_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout
    async with PosClient(options.url, options.api_key) as client:
        refund = await client.refund(body)
        while refund["status"] == "refunding" and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            refund = await client.refund(body)
        for line in refund_lines(refund):
            console.print(line, markup=False, highlight=False)
        entry = await client.order_payments(options.client_id, options.order_id)
        if entry is not None:
            for line in payments_lines(entry):
                console.print(line, markup=False, highlight=False)
    return 0 if refund["status"] == "refunded" else 1
