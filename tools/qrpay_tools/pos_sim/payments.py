"""Each guest's payment of a split bill as it arrives, and what is left (issue 12).

The POS learns of them from ``POST /orders/payments``; pos-sim asks after every status read
(polling) or change (push) and prints the payments it has not printed yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from qrpay_tools.pos_sim.bill import OrderRequest
from qrpay_tools.pos_sim.client import HttpError, PosClient, Unreachable


def payment_line(n: int, payment: dict[str, Any], names: list[str], entry: dict[str, Any]) -> str:
    currency = entry.get("currency") or ""
    items = [names[i] for i in payment.get("items", []) if 0 <= i < len(names)]
    what = f" for {', '.join(items)}" if items else ""
    tip = payment.get("tip", "0")
    tipped = f", tip {tip} {currency}" if tip not in ("0", "0.00") else ""
    return (
        f"payment {n}: {payment['amount']} {currency}{what}{tipped}"
        f" · left {entry.get('left')} {currency}"
    )


@dataclass
class PaymentLog:
    request: OrderRequest
    printed: set[str] = field(default_factory=set)

    async def report(self, client: PosClient, order_id: str, console: Console) -> None:
        """Print the payments not printed yet; a server without the route prints nothing."""
        try:
            entry = await client.order_payments(self.request.client_id, order_id)
        except (HttpError, Unreachable):
            return  # the status is what the POS acts on; payments are news
        if entry is None:
            return
        names = [item.name for item in self.request.items]
        for payment in entry.get("payments", []):
            if payment.get("id") in self.printed:
                continue
            self.printed.add(payment["id"])
            line = payment_line(len(self.printed), payment, names, entry)
            console.print(line, markup=False, highlight=False)
