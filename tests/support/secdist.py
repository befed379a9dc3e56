"""Secdist files for the tests of secrets: one with fresh secrets, one that is refused."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml

from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.secrets import deployment_secdists

SIGNING_KEY = "a-valid-signing-key-that-must-stay-secret-0123"
DATABASE_URL = "postgresql+asyncpg://qrpay:db-password-1234@db.internal/eda"
SHORT_API_KEY = "short-pos-key"


def dev_secdist_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())
    return data


def production_secdist(path: Path, service: str = "eda", **overrides: Any) -> Path:
    """``service``'s secdist with freshly generated secrets, as `qrpay secrets generate`
    writes it, with a POS key added as an operator would."""
    data = deployment_secdists([service])[service]
    data["api_keys"] = [{"name": "pos", "key": secrets.token_hex(16), "client_ids": ["rest-1"]}]
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


def production_config(path: Path) -> Path:
    """The development config with its development sign-in and tool tickets switched off
    and an https deep link: what production refuses is the sandbox gateway alone."""
    data = yaml.safe_load((REPO_DEV_CONFIG / "config.yaml").read_text())
    data["sessions"]["development_sign_in"] = False
    data["service_tickets"]["tools_allowed"] = False
    data["deeplink"]["base"] = "https://pay.example.com/go-pay/orders"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def bad_secdist() -> dict[str, Any]:
    """A rejected secdist that holds a good signing key, a database URL and a bad API key."""
    data = dev_secdist_data()
    data["hmac_keys"] = [SIGNING_KEY]
    data["databases"] = {"eda": DATABASE_URL, "nonsense": DATABASE_URL}
    data["api_keys"][0]["key"] = SHORT_API_KEY
    data["hmac_key"] = SIGNING_KEY  # a typo: the field is hmac_keys
    data[SIGNING_KEY] = "a secret pasted where a field name belongs"
    return data


def assert_nothing_secret(text: str) -> None:
    for secret in (SIGNING_KEY, "db-password-1234", DATABASE_URL, SHORT_API_KEY):
        assert secret not in text, text
