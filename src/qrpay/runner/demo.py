"""The demo guest's saved cards, bound in cardstorage when `qrpay up` starts (config ``demo``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qrpay.api_proxy.config import DemoConfig
from qrpay.cardstorage.client import CardstorageClient
from qrpay.cardstorage.schemas import PaymentMethodIn
from qrpay.kernel.config import DependencyConfig
from qrpay.kernel.http_client import HttpSession
from qrpay.kernel.metrics import ServiceMetrics


@dataclass(frozen=True)
class SeededCard:
    id: str
    mask: str
    expiry: str
    label: str


async def bind_demo_cards(
    demo: DemoConfig, cardstorage: Callable[[], DependencyConfig], ticket: Callable[[str], str]
) -> list[SeededCard]:
    """Bind every demo card (PUT: repeating it on each start is a no-op), calling with
    ``ticket`` (the tools' identity: no service binds cards)."""
    session = HttpSession(limit=4, ticket=ticket)
    client = CardstorageClient(
        session=session, dependency=cardstorage, metrics=ServiceMetrics("qrpay-up")
    )
    seeded: list[SeededCard] = []
    try:
        for card in demo.cards:
            bound = await client.bind(
                card.id,
                PaymentMethodIn(
                    user_id=demo.user_id,
                    token=card.token,
                    system=card.system,
                    last4=card.last4,
                    expiry_month=card.expiry_month,
                    expiry_year=card.expiry_year,
                ),
            )
            seeded.append(SeededCard(bound.id, bound.mask, bound.expiry, card.label))
    finally:
        await session.close()
    return seeded
