"""api-proxy's config: its sections (sessions, the demo users), and what its production
refuses (``kernel.production``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AwareDatetime, Field

from qrpay.kernel.config import ConfigCode, ConfigRefused, Strict
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Settings

if TYPE_CHECKING:
    # The composed model (the runner's), for typing only: it is made of this module.
    from qrpay.runner.config import QrpayConfig


class DemoCard(Strict):
    id: str
    token: str
    system: str = "visa"
    last4: str = Field(pattern=r"^[0-9]{4}$")
    expiry_month: int = Field(ge=1, le=12)
    expiry_year: int = Field(ge=2000, le=2100)
    label: str = ""


class DemoConfig(Strict):
    """What `qrpay up` seeds: a guest and their saved cards."""

    user_id: str = "demo-user"
    cards: tuple[DemoCard, ...] = ()


class SessionsConfig(Strict):
    """api-proxy's session cookies."""

    # The demo users' sign-in page (/login); kernel.production refuses it in production.
    development_sign_in: bool = False
    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    # Revocation: a user's sessions issued before this moment are refused (a stolen
    # cookie, a lost phone). Every session at once: rotate the session secret instead.
    revoked_before: dict[str, AwareDatetime] = Field(default_factory=dict)


def development_sign_in(settings: Settings, config: QrpayConfig) -> ConfigRefused | None:
    """The demo users' sign-in page lets anyone in."""
    if config.sessions.development_sign_in:
        return refused(
            "sessions.development_sign_in lets anyone sign in as a demo user",
            ConfigCode.DEVELOPMENT_SIGN_IN,
        )
    return None
