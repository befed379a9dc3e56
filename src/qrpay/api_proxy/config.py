"""api-proxy's config: what its production refuses (``kernel.production``)."""

from __future__ import annotations

from qrpay.kernel.config import ConfigCode, ConfigRefused, KernelConfig
from qrpay.kernel.production import refused
from qrpay.kernel.settings import Settings


def development_sign_in(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
    """The demo users' sign-in page lets anyone in."""
    if config.sessions.development_sign_in:
        return refused(
            "sessions.development_sign_in lets anyone sign in as a demo user",
            ConfigCode.DEVELOPMENT_SIGN_IN,
        )
    return None
