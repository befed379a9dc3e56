"""iiko-integration's config: what its production refuses (``kernel.production``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from qrpay.kernel.config import ConfigCode, ConfigRefused, KernelConfig
from qrpay.kernel.settings import Settings


def insecure_deeplink(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
    """The payer links iiko-integration prints must not travel in clear."""
    if urlsplit(config.deeplink.base).scheme != "https":
        return ConfigRefused(
            "deeplink.base must be https: a guest's payer link carries the order id and its "
            "signature, and opens the payer page",
            code=ConfigCode.INSECURE_DEEPLINK,
        )
    return None
