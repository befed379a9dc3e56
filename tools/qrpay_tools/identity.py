"""The tools' service ticket: how the guest CLI and the benchmarks call services directly.

Services accept the tools' identity only on the routes that declare it, and only while
their config says ``service_tickets.tools_allowed`` (development; refused in production).
The ticket is signed with the committed development secdist's key, like the demo API key
pos-sim uses: a production secdist never holds it (kernel/production.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qrpay.kernel.config import load_secdist
from qrpay.kernel.settings import Settings
from qrpay.kernel.tickets import TICKET_HEADER, TicketSigner, tools_ticket


def dev_tools_ticket() -> Callable[[], str]:
    path = Settings.model_fields["secdist"].default
    return tools_ticket(load_secdist(path).service_ticket_keys)


def tools_headers() -> dict[str, str]:
    """One call's headers with a fresh-enough tools ticket."""
    return {TICKET_HEADER: dev_tools_ticket()()}


def stand_in_ticket(service: str) -> Callable[[], str]:
    """The ticket of a call made as ``service`` with the development key, renewed before it
    expires: a benchmark that drives eda directly stands in for the service whose routes
    it calls (the services it runs read the development secdist; a production one never
    holds this key)."""
    keys = load_secdist(Settings.model_fields["secdist"].default).service_ticket_keys
    return TicketSigner(service, lambda: keys, time.time).ticket


def stand_in_headers(service: str) -> dict[str, str]:
    """One call's headers as ``service`` (``stand_in_ticket``)."""
    return {TICKET_HEADER: stand_in_ticket(service)()}
