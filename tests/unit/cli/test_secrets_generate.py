"""`qrpay secrets generate` (issue 20): one secdist per service, each holding its own
ticket key and its callers' public keys only, that a production-like start accepts."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qrpay.cli.main import app
from qrpay.kernel.config import ConfigRefused
from qrpay.kernel.settings import DEV_SECDIST, Environment, Settings
from qrpay.kernel.tickets import SUPPORT_IDENTITY, TicketInvalid, TicketVerifier, sign
from qrpay.runner.config import check_secdist, load_secdist
from qrpay.runner.registry import SERVICE_MODULES


def generate(directory: Path) -> None:
    result = CliRunner().invoke(app, ["secrets", "generate", str(directory)])
    assert result.exit_code == 0, result.output


def assert_refused(path: Path, service: str, code: str) -> None:
    """A production-like start of ``service`` with the secdist at ``path`` refuses it with ``code``."""
    settings = Settings(secdist=path, environment=Environment.STAGING)
    with pytest.raises(ConfigRefused) as refused:
        check_secdist(settings, load_secdist(path), service)
    assert refused.value.code == code, service


def test_each_service_holds_its_own_key_and_its_callers_public_keys(tmp_path: Path) -> None:
    generate(tmp_path)
    files = {path.stem: path for path in tmp_path.glob("*.yaml")}
    assert set(files) == {*SERVICE_MODULES, SUPPORT_IDENTITY}
    for service, path in files.items():
        assert path.stat().st_mode & 0o777 == 0o600, service
        secdist = load_secdist(path)
        assert set(secdist.ticket_keys.private) == {service}
        settings = Settings(secdist=path, environment=Environment.STAGING)
        assert check_secdist(settings, secdist, service) is secdist
    public = {
        service: set(load_secdist(path).ticket_keys.public) for service, path in files.items()
    }
    assert public["cardstorage"] == {"payments-eda"}
    assert public["transactions"] == {"payments-eda", "support"}
    assert public["cashback"] == {"payments-eda", "support"}
    assert public["eda"] == {"iiko-integration", "payments-eda", "support"}
    assert public["payments-eda"] == {"api-proxy", "iiko-integration", "support"}
    assert public["api-proxy"] == set()
    # The support tools' file: their own key, nobody's public key (nobody calls them).
    assert public["support"] == set()
    # The tools' identity is development's only.
    assert not any("qrpay-tools" in names for names in public.values())
    assert load_secdist(files["api-proxy"]).session_secrets
    assert load_secdist(files["cardstorage"]).session_secrets is None


def test_a_ticket_verifies_only_with_the_right_files(tmp_path: Path) -> None:
    generate(tmp_path)
    cardstorage = load_secdist(tmp_path / "cardstorage.yaml").ticket_keys
    now = int(time.time())
    verifier = TicketVerifier("cardstorage", lambda: cardstorage.public, lambda: float(now))
    for source in ("payments-eda", "api-proxy"):
        own = load_secdist(tmp_path / f"{source}.yaml").ticket_keys.signing(source)[0]
        ticket = sign("payments-eda", "cardstorage", own.get_secret_value(), now)
        if source == "payments-eda":
            assert verifier.verify(ticket).source == "payments-eda"
        else:
            with pytest.raises(TicketInvalid):
                verifier.verify(ticket)


def test_a_second_run_overwrites_nothing(tmp_path: Path) -> None:
    generate(tmp_path)
    before = (tmp_path / "eda.yaml").read_text()
    result = CliRunner().invoke(app, ["secrets", "generate", str(tmp_path)])
    assert result.exit_code != 0
    assert "already has" in result.stderr
    assert (tmp_path / "eda.yaml").read_text() == before


def test_a_file_runs_only_its_own_service(tmp_path: Path) -> None:
    generate(tmp_path)
    assert_refused(tmp_path / "payments-eda.yaml", "cardstorage", "other_services_keys")


def test_a_file_without_the_services_own_key_is_refused(tmp_path: Path) -> None:
    generate(tmp_path)
    path = tmp_path / "eda.yaml"
    data = yaml.safe_load(path.read_text())
    data["ticket_keys"]["private"] = {}
    path.write_text(yaml.safe_dump(data))
    assert_refused(path, "eda", "no_ticket_key")


def test_the_support_tools_key_opens_the_routes_that_allow_them_only(tmp_path: Path) -> None:
    generate(tmp_path)
    own = load_secdist(tmp_path / "support.yaml").ticket_keys.signing(SUPPORT_IDENTITY)[0]
    now = int(time.time())
    for service in SERVICE_MODULES:
        public = load_secdist(tmp_path / f"{service}.yaml").ticket_keys.public
        verifier = TicketVerifier(service, partial(dict, public), lambda: float(now))
        ticket = sign(SUPPORT_IDENTITY, service, own.get_secret_value(), now)
        if service in ("eda", "transactions", "payments-eda", "cashback"):
            assert verifier.verify(ticket).source == SUPPORT_IDENTITY, service
        else:
            with pytest.raises(TicketInvalid):
                verifier.verify(ticket)


def test_production_refuses_the_development_support_key(tmp_path: Path) -> None:
    generate(tmp_path)
    dev = load_secdist(DEV_SECDIST).ticket_keys
    # The support tools' own file with the development private key; a service's with the
    # development public key (anyone could sign as support with the private half).
    cases = (
        ("support", "private", dev.signing(SUPPORT_IDENTITY)[0].get_secret_value()),
        ("eda", "public", dev.public[SUPPORT_IDENTITY][0]),
    )
    for name, field, value in cases:
        path = tmp_path / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        data["ticket_keys"][field][SUPPORT_IDENTITY] = [value]
        path.write_text(yaml.safe_dump(data))
        assert_refused(path, name, "development_secrets")
