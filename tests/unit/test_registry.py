"""The one list of services (runner.registry) and what is derived from it."""

from __future__ import annotations

import importlib
import importlib.resources

import pytest

from qrpay.kernel.callers import allow, unknown_callers
from qrpay.kernel.config import ConfigRefused
from qrpay.kernel.tickets import new_private_key, public_half
from qrpay.runner.config import CALLER_NAMES, parse_config, parse_secdist
from qrpay.runner.context import service_app
from qrpay.runner.registry import (
    DEFAULT_PORTS,
    SERVICE_MODULES,
    SERVICE_NAMES,
    SERVICES,
    SERVICES_WITH_DATABASE,
    has_database,
)


def test_every_service_has_its_app_its_port_and_migrations_if_it_has_a_database() -> None:
    assert set(SERVICE_NAMES) == set(SERVICE_MODULES) == set(DEFAULT_PORTS)
    assert len(set(DEFAULT_PORTS.values())) == len(SERVICES)
    for spec in SERVICES:
        package = importlib.import_module(spec.package)
        assert package.__file__ is not None
        migrations = importlib.resources.files(spec.package) / "migrations"
        assert migrations.is_dir() == spec.has_database, spec.name
        assert has_database(spec.name) == (spec.name in SERVICES_WITH_DATABASE)
    assert not has_database("nobody")


def test_every_route_names_known_callers() -> None:
    for name in SERVICE_MODULES:
        service_app(name)


def test_an_unknown_caller_is_refused_when_the_app_is_built() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/x", dependencies=[allow("payments-edaa")])
    async def route() -> None: ...

    with pytest.raises(ValueError, match="payments-edaa"):
        unknown_callers(router.routes, CALLER_NAMES)


def test_the_config_defaults_every_service_and_refuses_others() -> None:
    config = parse_config({})
    assert {name: d.base_url for name, d in config.services.items()} == {
        name: f"http://127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()
    }
    with pytest.raises(ValueError, match="dependencies for unknown services"):
        parse_config({"services": {"nobody": {"base_url": "http://x"}}})
    with pytest.raises(ValueError, match="pool sizes for unknown services"):
        parse_config({"database_pools": {"services": {"nobody": 3}}})
    public = {"nobody": [public_half(new_private_key())]}
    with pytest.raises(ConfigRefused, match=r"ticket_keys\.public: value_error"):
        parse_secdist({"hmac_keys": ["k" * 16], "ticket_keys": {"public": public}})
