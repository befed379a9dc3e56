"""What a production process refuses to start with (issue 11).

The committed development secdist is public: with its session secret anyone can mint a
session cookie for any user, with its hmac key sign a payer link, with its API key read
and create orders. A process in production (``QRPAY_ENVIRONMENT``, production unless set)
refuses to start, and a reload is refused, when:

- ``QRPAY_SECDIST`` is not set (the default path is the development file);
- any secret in secdist is one of the development file's values (compared by value, so
  a copy of the file, or one of its keys pasted among fresh ones, is caught too);
- the config enables the development sign-in (anyone signs in as a demo user);
- the config lets the tools' identity call services (``service_tickets.tools_allowed``).

``qrpay up``, the tests, the benchmarks and the local cluster say
``QRPAY_ENVIRONMENT=development`` explicitly.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from qrpay.kernel.config import (
    ConfigCode,
    ConfigRefused,
    QrpayConfig,
    Secdist,
    load_secdist,
)
from qrpay.kernel.settings import DEV_SECDIST, Environment, Settings


@cache
def _development_values(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    values = load_secdist(path).secret_values().values()
    return frozenset(value for field in values for value in field)


def check_secdist(settings: Settings, secdist: Secdist) -> Secdist:
    """``secdist`` if this process may run with it, else ConfigRefused naming fields only."""
    if settings.environment == Environment.DEVELOPMENT:
        return secdist
    if "secdist" not in settings.model_fields_set:
        raise ConfigRefused(
            "production needs its own secdist: set QRPAY_SECDIST (the default is the public "
            "development file), or QRPAY_ENVIRONMENT=development for a local run",
            code=ConfigCode.SECDIST_NOT_SET,
        )
    public = _development_values(DEV_SECDIST)
    fields = [
        field for field, values in secdist.secret_values().items() if public.intersection(values)
    ]
    if fields:
        raise ConfigRefused(
            f"secdist {settings.secdist} holds public development values in "
            f"{', '.join(fields)}: generate new ones for production, or set "
            "QRPAY_ENVIRONMENT=development for a local run",
            code=ConfigCode.DEVELOPMENT_SECRETS,
        )
    return secdist


def check_config(settings: Settings, config: QrpayConfig) -> QrpayConfig:
    if settings.environment == Environment.PRODUCTION and config.sessions.development_sign_in:
        raise ConfigRefused(
            "sessions.development_sign_in lets anyone sign in as a demo user: it is for "
            "QRPAY_ENVIRONMENT=development only",
            code=ConfigCode.DEVELOPMENT_SIGN_IN,
        )
    if settings.environment == Environment.PRODUCTION and config.service_tickets.tools_allowed:
        raise ConfigRefused(
            "service_tickets.tools_allowed lets the command-line tools call services with "
            "user headers: it is for QRPAY_ENVIRONMENT=development only",
            code=ConfigCode.TOOL_TICKETS,
        )
    return config
