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
    # Its processes' (and its queue workers') CPU priority where a deployment starts them
    # (the cluster's supervisord, the systemd units): a nice level, 0 to 19, raised only,
    # so no root is needed. On a saturated box the POS path (iiko-integration, answering
    # polls from memory, and eda, which creates its orders and feeds its followers) runs
    # first; the payment path is niced and takes the CPU left, refused fast at its door.
    nice: int = 0

    @property
    def package(self) -> str:
        return self.app_module.rsplit(".", 1)[0]


# The payment path's nice level: a tenth of the CPU weight of a nice-0 process (110 to 1,024).
PAYMENT_NICE = 10

# In start-up order: the ones others call come first.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("eda", "qrpay.eda.app", 8083, has_database=True),
    ServiceSpec("cardstorage", "qrpay.cardstorage.app", 8085, has_database=True, nice=PAYMENT_NICE),
    ServiceSpec("cashback", "qrpay.cashback.app", 8086, has_database=True, nice=PAYMENT_NICE),
    ServiceSpec(
        "transactions", "qrpay.transactions.app", 8084, has_database=True, nice=PAYMENT_NICE
    ),
    ServiceSpec("payments-eda", "qrpay.payments_eda.app", 8082, nice=PAYMENT_NICE),
    ServiceSpec("iiko-integration", "qrpay.iiko_integration.app", 8081),
    ServiceSpec("api-proxy", "qrpay.api_proxy.app", 8080, nice=PAYMENT_NICE),
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
