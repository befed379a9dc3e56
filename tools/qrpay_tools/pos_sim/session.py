"""One POS session: send the pre-check, print and save the receipt, wait for the payment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from qrpay_tools.errors import poll_again
from qrpay_tools.pos_sim.bill import OrderRequest, format_money
from qrpay_tools.pos_sim.client import HttpError, PosClient, Unreachable
from qrpay_tools.pos_sim.errors import EXIT_NOT_PAYED, EXIT_PAYED, PosSimError
from qrpay_tools.pos_sim.payments import PaymentLog
from qrpay_tools.pos_sim.push import FINAL_STATUSES, follow_by_push
from qrpay_tools.pos_sim.receipt import Receipt, receipt_lines, save_files, terminal_qr


@dataclass(frozen=True)
class SessionOptions:
    url: str
    api_key: str
    out_dir: Path
    wait: bool = True
    timeout_seconds: float = 600.0
    poll_interval_seconds: float = 2.0
    request_timeout_seconds: float = 10.0
    # Follow the order over the WebSocket stream instead of polling (``pos_sim.push``).
    push: bool = False


def print_receipt(console: Console, receipt: Receipt) -> None:
    for line in receipt_lines(receipt):
        console.print(line, markup=False, highlight=False)
    link = receipt.link
    if link is None:
        console.print("(iiko-integration returned no QR code line)", markup=False)
        return
    console.file.write(terminal_qr(link))
    console.file.flush()
    # On its own line and never wrapped, so it can be copied or clicked.
    console.print(f"Link: {link}", markup=False, highlight=False, soft_wrap=True)


async def run_session(request: OrderRequest, options: SessionOptions, console: Console) -> int:
    async with PosClient(
        options.url, options.api_key, timeout_seconds=options.request_timeout_seconds
    ) as client:
        order = await client.create_order(request.body())
        receipt = Receipt(request=request, order=order)
        print_receipt(console, receipt)
        try:
            files = save_files(receipt, options.out_dir)
        except OSError as exc:
            raise PosSimError(f"cannot save the receipt under {options.out_dir}: {exc}") from None
        if files.qr is not None:
            console.print(f"QR code: {files.qr}", markup=False, soft_wrap=True)
        console.print(f"Receipt: {files.receipt}", markup=False, soft_wrap=True)
        if not options.wait:
            return EXIT_PAYED
        if options.push:
            payments = PaymentLog(request)

            async def on_change() -> None:
                await payments.report(client, order.order_id, console)

            status = await follow_by_push(
                client,
                request.client_id,
                order.order_id,
                options.timeout_seconds,
                console,
                on_change=on_change,
            )
            return final_line(console, order.order_id, status, request, options)
        return await poll_until_final(client, request, order.order_id, options, console)


async def poll_until_final(
    client: PosClient,
    request: OrderRequest,
    order_id: str,
    options: SessionOptions,
    console: Console,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Poll until the order is final or the timeout passes; time and sleep are injectable."""
    started = monotonic()
    deadline = started + options.timeout_seconds
    failures = 0
    status = "WAITING"
    total = f"{format_money(request.amount)} {request.currency}"
    payments = PaymentLog(request)
    with console.status(f"order {order_id}: waiting for the guest to pay {total}") as live:
        while True:
            try:
                status = await client.order_status(request.client_id, order_id)
                failures = 0
            except (Unreachable, HttpError) as exc:
                failures += 1
                if not poll_again(exc.status, failures):
                    raise
                status = f"{status} (retrying: {exc.message.removeprefix('error: ')})"
            if not failures:
                await payments.report(client, order_id, console)
            elapsed = int(monotonic() - started)
            live.update(f"order {order_id}: {status} · {total} · {elapsed}s")
            if status in FINAL_STATUSES:
                break
            remaining = deadline - monotonic()
            if remaining <= 0:
                break
            await sleep(min(options.poll_interval_seconds, remaining))
    return final_line(console, order_id, status, request, options)


def final_line(
    console: Console, order_id: str, status: str, request: OrderRequest, options: SessionOptions
) -> int:
    total = f"{format_money(request.amount)} {request.currency}"
    if status not in FINAL_STATUSES:
        console.print(
            f"order {order_id}: still not paid after {int(options.timeout_seconds)}s",
            markup=False,
        )
        return EXIT_NOT_PAYED
    if status == "PAYED":
        console.print(f"order {order_id}: PAID {total} — print the fiscal receipt", markup=False)
        return EXIT_PAYED
    console.print(f"order {order_id}: {status}", markup=False)
    return EXIT_NOT_PAYED
