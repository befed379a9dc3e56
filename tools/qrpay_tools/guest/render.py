"""What the guest sees in the terminal: the bill, the cashback offer, the cards."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from qrpay_tools.guest.api import Card, Preorder


def bill_table(preorder: Preorder) -> Table:
    title = preorder.restaurant or "Your bill"
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column("item")
    table.add_column("amount", justify="right")
    for line in preorder.lines:
        table.add_row(line.name, line.amount)
    table.add_row("[bold]To pay[/]", f"[bold]{preorder.amount} {preorder.currency}[/]")
    return table


def cashback_line(preorder: Preorder) -> str:
    offer = preorder.cashback
    if offer is None or not offer.amount:
        return "No cashback for this order."
    return f"Cashback: {offer.amount} {offer.currency} ({offer.rate} of the bill)"


def cards_table(cards: tuple[Card, ...]) -> Table:
    table = Table(title="Your cards", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id")
    table.add_column("card")
    table.add_column("expires")
    table.add_column("available")
    for index, card in enumerate(cards, start=1):
        label = " ".join(part for part in (card.system, card.mask) if part)
        table.add_row(
            str(index), card.id, label, card.expiry, "yes" if card.available else "[red]no[/]"
        )
    return table


def show_preorder(console: Console, preorder: Preorder) -> None:
    console.print(bill_table(preorder))
    console.print(f"Order id: {preorder.order_id}", markup=False)
    console.print(cashback_line(preorder), markup=False)
    if preorder.cards:
        console.print(cards_table(preorder.cards))
    else:
        console.print("You have no saved cards.", markup=False)
