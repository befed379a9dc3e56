"""The one list of qrpay's services: every other list of them is derived from this one.

The kernel names no service: what it needs of this list (the names a config or secdist
may mention, the default ports, a service's app module) it is given by the runner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # The module declaring ``SERVICE = ServiceApp(...)`` (and ``build_worker`` if it has one).
    app_module: str
    # Where it listens by default, and where its callers reach it by default.
    port: int
    # It owns a PostgreSQL database, with its Alembic revisions in ``<package>/migrations``.
    has_database: bool = False

    @property
    def package(self) -> str:
        return self.app_module.rsplit(".", 1)[0]


# In start-up order: the ones others call come first.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("eda", "qrpay.eda.app", 8083, has_database=True),
    ServiceSpec("cardstorage", "qrpay.cardstorage.app", 8085, has_database=True),
    ServiceSpec("cashback", "qrpay.cashback.app", 8086, has_database=True),
    ServiceSpec("transactions", "qrpay.transactions.app", 8084, has_database=True),
    ServiceSpec("payments-eda", "qrpay.payments_eda.app", 8082),
    ServiceSpec("iiko-integration", "qrpay.iiko_integration.app", 8081),
    ServiceSpec("api-proxy", "qrpay.api_proxy.app", 8080),
)

BY_NAME: dict[str, ServiceSpec] = {spec.name: spec for spec in SERVICES}

# By port: the order the config's ``services`` and the deployment files list them in.
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in sorted(SERVICES, key=lambda s: s.port))
DEFAULT_PORTS: dict[str, int] = {name: BY_NAME[name].port for name in SERVICE_NAMES}
# In start-up order.
SERVICE_MODULES: dict[str, str] = {spec.name: spec.app_module for spec in SERVICES}
SERVICES_WITH_DATABASE: tuple[str, ...] = tuple(s.name for s in SERVICES if s.has_database)


def known_services() -> list[str]:
    return list(SERVICE_MODULES)


def has_database(service: str) -> bool:
    spec = BY_NAME.get(service)
    return spec is not None and spec.has_database


def services_with_database() -> list[str]:
    return list(SERVICES_WITH_DATABASE)
