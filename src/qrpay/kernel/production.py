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
- the config lets the tools' identity call services (``service_tickets.tools_allowed``);
- a service's own check of its section refuses it: each service registers these
  (``runner.config``: a development sign-in, a fault switch of the tests, a payer link
  not on https, a sandbox payment gateway), and the kernel runs them in order.

``QRPAY_ENVIRONMENT=staging`` is not production, and says so: a check may let staging
through (the sandbox gateway). ``qrpay up``, the tests, the benchmarks and the local
cluster say ``QRPAY_ENVIRONMENT=development`` explicitly, and none of these checks apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from qrpay.kernel.config import ConfigCode, ConfigRefused, KernelConfig, Secdist
from qrpay.kernel.settings import DEV_SECDIST, Environment, Settings

C = TypeVar("C", bound=KernelConfig)


@cache
def _development_values(load: Callable[[Path], Secdist], path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    values = load(path).secret_values().values()
    return frozenset(value for field in values for value in field)


def check_secdist(
    settings: Settings,
    secdist: Secdist,
    load: Callable[[Path], Secdist],
    service: str | None = None,
) -> Secdist:
    """``secdist`` if this process (running ``service``, or several if None) may run with
    it, else ConfigRefused naming fields only. ``load`` reads the development file."""
    if settings.environment == Environment.DEVELOPMENT:
        return secdist
    if "secdist" not in settings.model_fields_set:
        raise ConfigRefused(
            "production needs its own secdist: set QRPAY_SECDIST (the default is the public "
            "development file), or QRPAY_ENVIRONMENT=development for a local run",
            code=ConfigCode.SECDIST_NOT_SET,
        )
    public = _development_values(load, DEV_SECDIST)
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


def refused(reason: str, code: ConfigCode) -> ConfigRefused:
    """A development-only switch turned on outside development."""
    return ConfigRefused(f"{reason}: it is for QRPAY_ENVIRONMENT=development only", code=code)


# What one section refuses outside development: a refusal or None. Each service registers
# its own (``runner.config``); the kernel runs them in order and raises the first refusal.
ProductionCheck = Callable[[Settings, Any], ConfigRefused | None]


def tools_tickets(settings: Settings, config: KernelConfig) -> ConfigRefused | None:
    """The kernel's own check: the tools' identity calls no production service."""
    if config.service_tickets.tools_allowed:
        return refused(
            "service_tickets.tools_allowed lets the command-line tools call services with "
            "user headers",
            ConfigCode.TOOL_TICKETS,
        )
    return None


def check_config(
    settings: Settings, config: C, checks: Sequence[ProductionCheck] = (tools_tickets,)
) -> C:
    """``config`` if this process may run with it, else the first refusal of ``checks``."""
    if settings.environment == Environment.DEVELOPMENT:
        return config
    for check in checks:
        refusal = check(settings, config)
        if refusal is not None:
            raise refusal
    return config
