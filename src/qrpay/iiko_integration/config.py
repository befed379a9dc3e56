"""iiko-integration's config: its sections (the push, the payer link, the bill text), and
what its production refuses (``kernel.production``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from qrpay.kernel.config import ConfigCode, ConfigRefused, Strict
from qrpay.kernel.settings import Settings

if TYPE_CHECKING:
    # The composed model (the runner's), for typing only: it is made of this module.
    from qrpay.runner.config import QrpayConfig


class PushConfig(Strict):
    """iiko-integration's push to the POS (``iiko_integration.push``)."""

    # A ping message on every quiet WebSocket this often; the POS answers each with a pong.
    heartbeat_ms: int = Field(default=15_000, ge=10, le=600_000)
    # A WebSocket whose POS sent nothing (no pong) for this long is closed (code 4408).
    client_timeout_ms: int = Field(default=45_000, ge=10, le=3_600_000)
    # Changes queued for one connection; a POS this far behind is closed (code 1013) and
    # resumes from its cursor.
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    # Changes the instance keeps after following them, so a POS that resumes from a recent
    # cursor is answered from memory; an older cursor is caught up from eda.
    buffer_size: int = Field(default=50_000, ge=1, le=10_000_000)
    # WebSocket streams one instance keeps open per POS API key, and in all; one more is
    # refused at the handshake (429 too_many_streams, 503 overloaded). A key serves every
    # terminal of its restaurants; `make bench-push` raises both for its 10,000.
    max_streams_per_key: int = Field(default=200, ge=1, le=1_000_000)
    max_streams: int = Field(default=20_000, ge=1, le=1_000_000)


class DeeplinkConfig(Strict):
    base: str = "https://yandex-go.ru/go-pay/orders"


def _templates_have_rate(value: dict[str, str]) -> dict[str, str]:
    for language, template in value.items():
        if "{rate}" not in template:
            raise ValueError(f"template {language!r} must contain {{rate}}")
        try:
            template.format(rate="30%")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template {language!r} is not valid: {exc}") from exc
    if "ru" not in value:
        raise ValueError("a 'ru' template is required")
    return value


# The text printed on a bill by language, ``{rate}`` the restaurant's cashback rate.
BillTextTemplates = Annotated[dict[str, str], AfterValidator(_templates_have_rate)]


def default_bill_text_templates() -> dict[str, str]:
    return {
        "ru": "Оплати через yandex-go и получи кэшбэк {rate}!",
        "en": "Pay with yandex-go and get {rate} cashback!",
    }


def insecure_deeplink(settings: Settings, config: QrpayConfig) -> ConfigRefused | None:
    """The payer links iiko-integration prints must not travel in clear."""
    if urlsplit(config.deeplink.base).scheme != "https":
        return ConfigRefused(
            "deeplink.base must be https: a guest's payer link carries the order id and its "
            "signature, and opens the payer page",
            code=ConfigCode.INSECURE_DEEPLINK,
        )
    return None
