"""The product's config and secdist: the kernel's models given the services' names
(``runner.registry``) and the services' sections, and the services' production checks.

Everything that reads either file goes through here, so the file format, its
validation and its defaults are the same for every process, tool and test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from qrpay.api_proxy import config as api_proxy_config
from qrpay.api_proxy.config import DemoConfig, SessionsConfig
from qrpay.cashback import config as cashback_config
from qrpay.cashback.config import CashbackServiceConfig
from qrpay.eda.config import FeedConfig, OrdersConfig
from qrpay.iiko_integration import config as iiko_integration_config
from qrpay.iiko_integration.config import (
    BillTextTemplates,
    DeeplinkConfig,
    PushConfig,
    default_bill_text_templates,
)
from qrpay.kernel import production
from qrpay.kernel.config import (
    DatabasePoolsConfig,
    KernelConfig,
    Secdist,
    TicketKeys,
    caller_names,
    load_secdist_as,
    load_yaml,
    parse_config_as,
    parse_secdist_as,
    ticket_identities,
)
from qrpay.kernel.production import ProductionCheck
from qrpay.kernel.reloading import ConfigFiles, RuntimeConfig
from qrpay.kernel.settings import Settings
from qrpay.payments_eda.config import PaymentsConfig
from qrpay.restaurants import RestaurantSections
from qrpay.runner.registry import DEFAULT_PORTS, SERVICE_NAMES
from qrpay.transactions import config as transactions_config
from qrpay.transactions.config import TransactionsConfig

# Who a route may name as its caller (``kernel.callers.allow``).
CALLER_NAMES = caller_names(SERVICE_NAMES)
# Who may hold ticket keys.
TICKET_IDENTITIES = ticket_identities(SERVICE_NAMES)


class DatabasePools(DatabasePoolsConfig):
    service_names = SERVICE_NAMES


class QrpayTicketKeys(TicketKeys):
    identities = TICKET_IDENTITIES


class QrpayConfig(RestaurantSections, KernelConfig):
    """The config file: the kernel's sections, the restaurants, and each service's own."""

    service_ports = DEFAULT_PORTS

    orders: OrdersConfig = OrdersConfig()
    feed: FeedConfig = FeedConfig()
    push: PushConfig = PushConfig()
    deeplink: DeeplinkConfig = DeeplinkConfig()
    bill_text_templates: BillTextTemplates = Field(default_factory=default_bill_text_templates)
    payments: PaymentsConfig = PaymentsConfig()
    transactions: TransactionsConfig = TransactionsConfig()
    cashback_service: CashbackServiceConfig = CashbackServiceConfig()
    demo: DemoConfig = DemoConfig()
    sessions: SessionsConfig = SessionsConfig()
    database_pools: DatabasePools = DatabasePools()


class QrpaySecdist(Secdist):
    service_names = SERVICE_NAMES

    ticket_keys: QrpayTicketKeys


# In the order they are reported (the first refusal wins).
PRODUCTION_CHECKS: tuple[ProductionCheck, ...] = (
    api_proxy_config.development_sign_in,
    production.tools_tickets,
    transactions_config.gateway_fault,
    cashback_config.failing_accruals,
    iiko_integration_config.insecure_deeplink,
    transactions_config.sandbox_gateway,
)


def parse_config(data: Any) -> QrpayConfig:
    return parse_config_as(QrpayConfig, data)


def load_config(path: Path) -> QrpayConfig:
    return parse_config(load_yaml(path))


def parse_secdist(data: Any) -> QrpaySecdist:
    return parse_secdist_as(QrpaySecdist, data)


def load_secdist(path: Path) -> QrpaySecdist:
    return load_secdist_as(QrpaySecdist, path)


FILES = ConfigFiles(
    load_config=load_config, load_secdist=load_secdist, production_checks=PRODUCTION_CHECKS
)


def check_config(settings: Settings, config: QrpayConfig) -> QrpayConfig:
    """``config`` if this process may run with it (``kernel.production``)."""
    return production.check_config(settings, config, PRODUCTION_CHECKS)


def check_secdist(settings: Settings, secdist: Secdist, service: str | None = None) -> Secdist:
    """``secdist`` if this process (running ``service``, or several) may run with it."""
    return production.check_secdist(settings, secdist, load_secdist, service)


def runtime_from_files(config: Path, secdist: Path) -> RuntimeConfig[QrpayConfig]:
    return RuntimeConfig.from_files(config, secdist, FILES)


def runtime_for_settings(
    settings: Settings, service: str | None = None
) -> RuntimeConfig[QrpayConfig]:
    return RuntimeConfig.for_settings(settings, FILES, service)
