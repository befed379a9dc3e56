"""The tools' service tickets: how the guest CLI and the benchmarks call services directly.

Services accept the tools' identity only on the routes that declare it, and only while
their config says ``service_tickets.tools_allowed`` (development; refused in production).
The tickets are signed with the committed development secdist's keys, like the demo API
key pos-sim uses: a production secdist never holds them (kernel/production.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qrpay.kernel.settings import Settings
from qrpay.kernel.tickets import TICKET_HEADER, TOOLS_IDENTITY, TicketSigner
from qrpay.runner.config import load_secdist


def development_signer(identity: str) -> TicketSigner:
    """Tickets as ``identity`` with its development key, on the system clock, renewed
    before they expire."""
    keys = load_secdist(Settings.model_fields["secdist"].default).ticket_keys.signing(identity)
    return TicketSigner(identity, lambda: keys, time.time)


def dev_tools_ticket() -> Callable[[str], str]:
    """The tools' ticket for a destination (an ``HttpSession``'s ``ticket``)."""
    return development_signer(TOOLS_IDENTITY).ticket


def tools_headers(destination: str) -> dict[str, str]:
    """One call's headers to ``destination`` with a fresh-enough tools ticket."""
    return {TICKET_HEADER: dev_tools_ticket()(destination)}


def stand_in_ticket(service: str, destination: str) -> Callable[[], str]:
    """The ticket of calls made as ``service`` to ``destination`` with the development key,
    renewed before it expires: a benchmark that drives eda directly stands in for the
    service whose routes it calls (the services it runs read the development secdist; a
    production one never holds this key)."""
    return development_signer(service).for_destination(destination)


def stand_in_headers(service: str, destination: str) -> dict[str, str]:
    """One call's headers as ``service`` to ``destination`` (``stand_in_ticket``)."""
    return {TICKET_HEADER: stand_in_ticket(service, destination)()}
