"""One guest session: open the link, show the bill, pay with a card, follow the status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.prompt import Prompt

from qrpay.cashback.client import CashbackClient
from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.errors import QrpayError
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.metrics import ServiceMetrics
from qrpay_tools.errors import poll_again
from qrpay_tools.guest.api import Card, HttpError, PaymentsApi, PaymentStatus, Preorder, Unreachable
from qrpay_tools.guest.errors import EXIT_ERROR, EXIT_NOT_PAYED, EXIT_PAYED, GuestError
from qrpay_tools.guest.link import OrderLink, parse_link
from qrpay_tools.guest.render import show_preorder
from qrpay_tools.guest.share import parse_share, parse_tip
from qrpay_tools.identity import dev_tools_ticket

FINAL = ("PAYED", "DECLINED")
# eda's order statuses (as the preorder reports them) that leave nothing to pay.
CLOSED = {"PAYED": "already paid", "CANCELED": "closed by the restaurant (unpaid too long)"}
# How long each status long-poll may be held by the server (the payer page's own).
LONG_POLL_MS = 20_000

# Gets the usable cards, returns the id to pay with, or None when the guest gives up.
ChooseCard = Callable[[tuple[Card, ...]], str | None]


@dataclass(frozen=True)
class GuestOptions:
    link: str
    api_url: str = "http://127.0.0.1:8082"
    cashback_url: str = "http://127.0.0.1:8086"
    user_id: str = "demo-user"
    card_id: str | None = None
    language: str = "en"
    timeout_seconds: float = 120.0
    request_timeout_seconds: float = 10.0
    # A share of a split bill (``guest.share``): rest, equal:N, items:I,J, amount:X.
    share: str | None = None
    tip: str | None = None


def prompt_for_card(console: Console) -> ChooseCard:
    """Ask which card to pay with: its number in the table or its id."""

    def choose(cards: tuple[Card, ...]) -> str | None:
        by_key = {str(index): card.id for index, card in enumerate(cards, start=1)}
        by_key.update({card.id: card.id for card in cards})
        while True:
            try:
                answer = Prompt.ask(
                    "Pay with card (# or id, q to quit)", console=console, default="1"
                )
            except EOFError:
                raise GuestError("no card chosen (stdin closed); pass --card ID") from None
            if answer.strip().lower() in ("q", "quit"):
                return None
            chosen = by_key.get(answer.strip())
            if chosen is not None:
                return chosen
            console.print(f"No card {answer.strip()!r}; pick one from the table.", markup=False)

    return choose


def pick_card(preorder: Preorder, wanted: str | None, choose: ChooseCard) -> Card | None:
    usable = tuple(card for card in preorder.cards if card.available)
    if wanted is not None:
        card = next((card for card in preorder.cards if card.id == wanted), None)
        if card is None:
            known = ", ".join(c.id for c in preorder.cards) or "none"
            raise GuestError(f"card {wanted!r} is not one of your cards (yours: {known})")
        if not card.available:
            raise GuestError(f"card {wanted!r} is not available for payment; pick another")
        return card
    if not usable:
        raise GuestError("you have no card that can pay; bind one first")
    chosen = choose(usable)
    if chosen is None:
        return None
    return next(card for card in usable if card.id == chosen)


async def run_guest(options: GuestOptions, console: Console, choose: ChooseCard) -> int:
    link = parse_link(options.link)
    async with PaymentsApi(
        options.api_url,
        user_id=options.user_id,
        language=options.language,
        timeout_seconds=options.request_timeout_seconds,
    ) as api:
        preorder = await api.preorder(link)
        show_preorder(console, preorder)
        if preorder.status in CLOSED:
            console.print(
                f"order {link.order_id}: {CLOSED[preorder.status]}; nothing to pay", markup=False
            )
            if preorder.status == "PAYED":
                refunded = (await api.status(link)).refunded
                if refunded:
                    console.print(
                        f"Refunded to your card: {refunded} {preorder.currency}", markup=False
                    )
            return EXIT_NOT_PAYED
        if options.share is not None:
            return await pay_share(api, link, preorder, options, console, choose)
        while True:
            card = pick_card(preorder, options.card_id, choose)
            if card is None:
                console.print(f"order {link.order_id}: not paid", markup=False)
                return EXIT_NOT_PAYED
            console.print(
                f"Paying {preorder.amount} {preorder.currency} with {card.id} ({card.mask})",
                markup=False,
            )
            first = await api.pay(link, card.id, preorder.amount, preorder)
            final = await follow(api, link, first, options, console)
            if final.status == "PAYED":
                break
            reason = final.message or "try another card or pay at the restaurant"
            console.print(f"order {link.order_id}: DECLINED — {reason}", markup=False)
            if options.card_id is not None:
                # Scripted: exit 1 so the caller can try another card.
                return EXIT_NOT_PAYED
            api.new_payment()  # another card is another payment
    note = f" — {final.message}" if final.message else ""
    console.print(
        f"order {link.order_id}: PAYED {preorder.amount} {preorder.currency}{note}", markup=False
    )
    await show_balance(console, options)
    return EXIT_PAYED


def left_line(split: dict[str, Any]) -> str:
    currency = split.get("currency", "")
    held = f", {split.get('held')} {currency} being paid" if split.get("held") != "0.00" else ""
    return (
        f"Paid {split.get('paid')} of {split.get('total')} {currency}{held}; "
        f"left {split.get('left')} {currency}"
    )


async def pay_share(
    api: PaymentsApi,
    link: OrderLink,
    preorder: Preorder,
    options: GuestOptions,
    console: Console,
    choose: ChooseCard,
) -> int:
    """Pay a share of the bill at its quoted price, with the tip; follow it to the end."""
    assert options.share is not None
    choice = parse_share(options.share)
    tip = parse_tip(options.tip)
    console.print(left_line(await api.split(link)), markup=False)
    price = await api.quote(link, choice)
    console.print(f"Your share: {price} {preorder.currency}", markup=False)
    card = pick_card(preorder, options.card_id, choose)
    if card is None:
        console.print(f"order {link.order_id}: not paid", markup=False)
        return EXIT_NOT_PAYED
    share_id, first = await api.pay_share(link, card.id, choice, price, preorder, tip)
    final = await follow(
        api, link, first, options, console, poll=lambda wait: api.share_status(link, share_id, wait)
    )
    if final.status != "PAYED":
        reason = final.message or "try another card or pay at the restaurant"
        console.print(f"order {link.order_id}: share DECLINED — {reason}", markup=False)
        return EXIT_NOT_PAYED
    console.print(f"order {link.order_id}: share PAYED {price} {preorder.currency}", markup=False)
    console.print(left_line(await api.split(link)), markup=False)
    await show_balance(console, options)
    return EXIT_PAYED


async def follow(
    api: PaymentsApi,
    link: OrderLink,
    current: PaymentStatus,
    options: GuestOptions,
    console: Console,
    *,
    poll: Callable[[int], Awaitable[PaymentStatus]] | None = None,
) -> PaymentStatus:
    """The payment status (or a share's, with ``poll``) until PAYED or DECLINED, as the
    payer page follows it: long-polls, asked again at once after an answer the server held
    at least X-Polling-Delay, after that delay otherwise (a server that does not wait)."""
    read = poll or (lambda wait: api.status(link, wait))
    started = time.monotonic()
    deadline = started + options.timeout_seconds
    failures = 0
    delay = 0.0  # the pay's answer was the last word: the first long-poll goes at once
    shown = current.status
    with console.status(f"order {link.order_id}: {shown}") as live:
        while current.status not in FINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestError(
                    f"order {link.order_id}: no final status after "
                    f"{options.timeout_seconds:g}s (last: {current.status})"
                )
            if delay:
                await asyncio.sleep(min(delay, remaining))
            try:
                asked = time.monotonic()
                wait_ms = max(0, min(LONG_POLL_MS, int((deadline - asked) * 1000)))
                current = await read(wait_ms)
                failures = 0
                held = time.monotonic() - asked >= current.polling_delay
                delay = 0.0 if held else current.polling_delay
                shown = current.status + (f" · {current.message}" if current.message else "")
            except (Unreachable, HttpError) as exc:
                failures += 1
                if not poll_again(exc.status, failures):
                    raise
                shown = f"{current.status} (retrying: {exc.message})"
                delay = current.polling_delay
            elapsed = int(time.monotonic() - started)
            live.update(f"order {link.order_id}: {shown} · {elapsed}s")
    return current


async def show_balance(console: Console, options: GuestOptions) -> None:
    """The guest's cashback balance after a payment; a failure here does not undo the payment."""
    session = HttpSession(limit=4, ticket=dev_tools_ticket())
    client = CashbackClient(
        session=session,
        dependency=lambda: DependencyConfig(
            base_url=options.cashback_url,
            timeout_ms=int(options.request_timeout_seconds * 1000),
            retries=1,
        ),
        metrics=ServiceMetrics("guest"),
    )
    try:
        answer = await client.balance(options.user_id)
    except QrpayError as exc:
        console.print(f"cashback balance unavailable: {exc.message}", markup=False)
        return
    finally:
        await session.close()
    if not answer.balances:
        console.print("Cashback balance: 0 (the accrual may still be on its way)", markup=False)
        return
    text = ", ".join(f"{b.amount} {b.currency}" for b in answer.balances)
    console.print(f"Cashback balance: {text}", markup=False)


__all__ = ["EXIT_ERROR", "GuestOptions", "prompt_for_card", "run_guest"]
