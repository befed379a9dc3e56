"""Process settings from the environment (``QRPAY_*``): where things are.

What the system does lives in the YAML config; where its files, data and
secrets are lives here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DEV_CONFIG = Path(__file__).resolve().parents[3] / "config" / "dev"


def _packaged_dev_config() -> Path:
    # Installed from a wheel there is no repo around us; the dev files ship as package data.
    here = Path(__file__).resolve().parent.parent / "devconfig"
    return REPO_DEV_CONFIG if REPO_DEV_CONFIG.is_dir() else here


DEV_SECDIST = _packaged_dev_config() / "secdist.yaml"


class Environment(StrEnum):
    # Production unless said otherwise: forgetting the variable must fail closed.
    PRODUCTION = "production"
    # Not production, and said so: production's checks of secrets and switches, but the
    # sandbox payment gateway allowed (no real money moves). For a production-like
    # deployment that is not one, and the tests of a production start (kernel.production).
    STAGING = "staging"
    DEVELOPMENT = "development"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QRPAY_", extra="ignore")

    config: Path = _packaged_dev_config() / "config.yaml"
    # The development secdist is the default so that `qrpay up` and the tools need no setup;
    # kernel.production refuses it in production.
    secdist: Path = DEV_SECDIST
    environment: Environment = Environment.PRODUCTION
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: str = "json"

    def database_url(self, service: str, configured: dict[str, str]) -> str:
        if service in configured:
            return configured[service]
        name = service.replace("-", "_")
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / name}.db"
