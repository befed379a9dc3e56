"""What a production process refuses to start with (issues 11, 20).

The committed development secdist is public: with its session secret anyone can mint a
session cookie for any user, with its hmac key sign a payer link, with its API key read
and create orders, with its ticket keys call any service as any other. A process in
production (``QRPAY_ENVIRONMENT``, production unless set) refuses to start, and a reload
is refused, when:

- ``QRPAY_SECDIST`` is not set (the default path is the development file);
- any secret in secdist is one of the development file's values (compared by value, so
  a copy of the file, or one of its keys pasted among fresh ones, is caught too), the
  development public ticket keys included;
- secdist holds another service's private ticket key (a process holds its own only:
  ``qrpay secrets generate`` writes one file per service), or none of its own;
- the config enables the development sign-in (anyone signs in as a demo user);
- the config lets the tools' identity call services (``service_tickets.tools_allowed``);
- the config turns on a fault switch of the tests (``transactions.gateway.lost_answer_rate``,
  ``cashback_service.fail_accruals``);
- the payer deep link is not https (a guest's link would travel in clear);
- the payment gateway is the sandbox (no money would move): only ``staging`` allows it.

``QRPAY_ENVIRONMENT=staging`` is not production, and says so: every check above but the
last. ``qrpay up``, the tests, the benchmarks and the local cluster say
``QRPAY_ENVIRONMENT=development`` explicitly, and none of these checks apply.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

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


def check_secdist(settings: Settings, secdist: Secdist, service: str | None = None) -> Secdist:
    """``secdist`` if this process (running ``service``, or several if None) may run with
    it, else ConfigRefused naming fields only."""
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
    holders = set(secdist.ticket_keys.private)
    others = sorted(holders - {service}) if service else sorted(holders)[1:]
    if others:
        raise ConfigRefused(
            f"secdist {settings.secdist} holds the private ticket keys of {', '.join(others)}: "
            "a process holds its own service's only (`qrpay secrets generate`)",
            code=ConfigCode.OTHER_SERVICES_KEYS,
        )
    if service and service not in holders:
        raise ConfigRefused(
            f"secdist {settings.secdist} holds no private ticket key of {service}: its calls "
            "to other services would all be refused (`qrpay secrets generate`)",
            code=ConfigCode.NO_TICKET_KEY,
        )
    return secdist


def _refused(reason: str, code: ConfigCode) -> ConfigRefused:
    return ConfigRefused(f"{reason}: it is for QRPAY_ENVIRONMENT=development only", code=code)


def check_config(settings: Settings, config: QrpayConfig) -> QrpayConfig:
    """``config`` if this process may run with it, else ConfigRefused naming the switch."""
    if settings.environment == Environment.DEVELOPMENT:
        return config
    if config.sessions.development_sign_in:
        raise _refused(
            "sessions.development_sign_in lets anyone sign in as a demo user",
            ConfigCode.DEVELOPMENT_SIGN_IN,
        )
    if config.service_tickets.tools_allowed:
        raise _refused(
            "service_tickets.tools_allowed lets the command-line tools call services with "
            "user headers",
            ConfigCode.TOOL_TICKETS,
        )
    gateway = config.transactions.gateway
    if gateway.lost_answer_rate:
        raise _refused(
            "transactions.gateway.lost_answer_rate loses gateway answers on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    if config.cashback_service.fail_accruals:
        raise _refused(
            "cashback_service.fail_accruals makes every accrual fail on purpose",
            ConfigCode.FAULT_SWITCH,
        )
    if urlsplit(config.deeplink.base).scheme != "https":
        raise ConfigRefused(
            "deeplink.base must be https: a guest's payer link carries the order id and its "
            "signature, and opens the payer page",
            code=ConfigCode.INSECURE_DEEPLINK,
        )
    if settings.environment == Environment.PRODUCTION and gateway.kind == "sandbox":
        raise ConfigRefused(
            "transactions.gateway.kind is the sandbox: no money would move. Production "
            "needs a real gateway; QRPAY_ENVIRONMENT=staging runs on the sandbox with "
            "every other production check",
            code=ConfigCode.SANDBOX_GATEWAY,
        )
    return config
