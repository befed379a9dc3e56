"""A production start refuses the development secdist (issue 11): `qrpay serve` and `qrpay worker`.

uvicorn.run is replaced by a recorder, so a start that gets through is seen at once and
nothing listens; the refusals happen before it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from qrpay.cli import serve, worker
from qrpay.cli.main import app
from qrpay.kernel.settings import REPO_DEV_CONFIG
from tests.support.processes import free_port
from tests.support.secdist import (
    assert_nothing_secret,
    bad_secdist,
    production_config,
    production_secdist,
)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    # What a start changes in this process, undone after the test.
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)
    monkeypatch.setenv(serve.SERVICE_ENV, "")
    monkeypatch.delenv(serve.SERVICE_ENV)
    return calls


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A command configures structlog for its process; here that would point every later
    # test's cached loggers at this runner's closed stream.
    for module in (serve, worker):
        monkeypatch.setattr(module, "configure_logging", lambda *args: None)
    for name in list(os.environ):
        if name.startswith(("QRPAY_", "PROMETHEUS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QRPAY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("QRPAY_CONFIG", str(production_config(tmp_path / "config.yaml")))
    monkeypatch.setenv("QRPAY_LOG_FORMAT", "console")


def serve_eda(**env: str) -> Any:
    return CliRunner().invoke(app, ["serve", "eda", "--port", str(free_port())], env=env)


def test_serve_without_an_explicit_secdist_is_refused(started: list[dict[str, Any]]) -> None:
    result = serve_eda()
    assert result.exit_code == 2, result.output
    assert started == []
    assert "error: " in result.stderr
    assert "QRPAY_SECDIST" in result.stderr
    assert "development_secrets" in result.stderr or "secdist_not_set" in result.stderr


@pytest.mark.parametrize("where", ["committed", "copied"])
def test_serve_with_the_development_secrets_is_refused(
    started: list[dict[str, Any]], tmp_path: Path, where: str
) -> None:
    path = REPO_DEV_CONFIG / "secdist.yaml"
    if where == "copied":
        path = Path(shutil.copy(path, tmp_path / "secdist.yaml"))
    result = serve_eda(QRPAY_SECDIST=str(path))
    assert result.exit_code == 2, result.output
    assert started == []
    assert "development_secrets" in result.stderr
    # The names of what is public, never the values.
    assert "session_secrets" in result.stderr
    assert "hmac_keys" in result.stderr
    assert "dev-session-secret" not in result.stderr


def test_one_development_value_among_fresh_ones_is_refused(
    started: list[dict[str, Any]], tmp_path: Path
) -> None:
    dev_key = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())["hmac_keys"][0]
    path = production_secdist(tmp_path / "secdist.yaml", hmac_keys=[secrets.token_hex(24), dev_key])
    result = serve_eda(QRPAY_SECDIST=str(path))
    assert result.exit_code == 2, result.output
    assert "hmac_keys" in result.stderr
    assert started == []


@pytest.mark.parametrize("half", ["private", "public"])
def test_a_development_ticket_key_among_fresh_ones_is_refused(
    started: list[dict[str, Any]], tmp_path: Path, half: str
) -> None:
    # Anyone can sign with a development private key: its public half verifies forgeries.
    development = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())["ticket_keys"]
    path = production_secdist(tmp_path / "secdist.yaml")
    data = yaml.safe_load(path.read_text())
    holder = "eda" if half == "private" else "iiko-integration"
    dev_key = development[half][holder][0]
    data["ticket_keys"][half][holder] = [*data["ticket_keys"][half].get(holder, []), dev_key]
    path.write_text(yaml.safe_dump(data))
    result = serve_eda(QRPAY_SECDIST=str(path), QRPAY_ENVIRONMENT="staging")
    assert result.exit_code == 2, result.output
    assert f"ticket_keys.{half}" in result.stderr
    assert "development_secrets" in result.stderr
    assert dev_key not in result.output + result.stderr
    assert started == []


def test_another_services_private_ticket_key_is_refused(
    started: list[dict[str, Any]], tmp_path: Path
) -> None:
    # With payments-eda's key, eda's process could read card tokens at cardstorage.
    path = production_secdist(tmp_path / "secdist.yaml")
    data = yaml.safe_load(path.read_text())
    others = production_secdist(tmp_path / "other.yaml", service="payments-eda")
    data["ticket_keys"]["private"] |= yaml.safe_load(others.read_text())["ticket_keys"]["private"]
    path.write_text(yaml.safe_dump(data))
    result = serve_eda(QRPAY_SECDIST=str(path), QRPAY_ENVIRONMENT="staging")
    assert result.exit_code == 2, result.output
    assert "other_services_keys" in result.stderr
    assert "payments-eda" in result.stderr
    assert started == []


def with_config(tmp_path: Path, section: str, key: str, value: Any) -> Path:
    config = production_config(tmp_path / "config.yaml")
    data = yaml.safe_load(config.read_text())
    data[section][key] = value
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    return config


@pytest.mark.parametrize("environment", ["production", "staging"])
@pytest.mark.parametrize(
    ("section", "key", "value", "code"),
    [
        ("cashback_service", "fail_accruals", True, "fault_switch"),
        ("deeplink", "base", "http://pay.example.com/go-pay/orders", "insecure_deeplink"),
    ],
)
def test_production_refuses_a_switch_of_the_tests(
    started: list[dict[str, Any]],
    tmp_path: Path,
    environment: str,
    section: str,
    key: str,
    value: Any,
    code: str,
) -> None:
    result = serve_eda(
        QRPAY_CONFIG=str(with_config(tmp_path, section, key, value)),
        QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")),
        QRPAY_ENVIRONMENT=environment,
    )
    assert result.exit_code == 2, result.output
    assert code in result.stderr
    assert key in result.stderr
    assert started == []


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_production_refuses_lost_gateway_answers(
    started: list[dict[str, Any]], tmp_path: Path, environment: str
) -> None:
    gateway = {"kind": "sandbox", "latency_ms": 0, "lost_answer_rate": 0.5}
    result = serve_eda(
        QRPAY_CONFIG=str(with_config(tmp_path, "transactions", "gateway", gateway)),
        QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")),
        QRPAY_ENVIRONMENT=environment,
    )
    assert result.exit_code == 2, result.output
    assert "fault_switch" in result.stderr
    assert "lost_answer_rate" in result.stderr
    assert started == []


def test_production_refuses_the_sandbox_gateway_and_staging_takes_it(
    started: list[dict[str, Any]], tmp_path: Path
) -> None:
    secdist = str(production_secdist(tmp_path / "secdist.yaml"))
    result = serve_eda(QRPAY_SECDIST=secdist)
    assert result.exit_code == 2, result.output
    assert "sandbox_gateway" in result.stderr
    assert started == []
    # Not production, and named so: every other check still applies (the tests above).
    result = serve_eda(QRPAY_SECDIST=secdist, QRPAY_ENVIRONMENT="staging")
    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_production_refuses_tool_tickets(started: list[dict[str, Any]], tmp_path: Path) -> None:
    config = production_config(tmp_path / "config.yaml")
    data = yaml.safe_load(config.read_text())
    data["service_tickets"]["tools_allowed"] = True
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = serve_eda(
        QRPAY_CONFIG=str(config),
        QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")),
    )
    assert result.exit_code == 2, result.output
    assert "tool_tickets" in result.stderr
    assert started == []


def test_serve_with_generated_secrets_starts(started: list[dict[str, Any]], tmp_path: Path) -> None:
    result = serve_eda(
        QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")),
        QRPAY_ENVIRONMENT="staging",
    )
    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_the_development_flag_allows_the_development_secrets(
    started: list[dict[str, Any]],
) -> None:
    result = serve_eda(QRPAY_ENVIRONMENT="development")
    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_an_unknown_environment_is_refused(started: list[dict[str, Any]]) -> None:
    result = serve_eda(QRPAY_ENVIRONMENT="prod")
    assert result.exit_code == 2
    assert started == []


def test_worker_without_an_explicit_secdist_is_refused() -> None:
    result = CliRunner().invoke(app, ["worker", "payments-eda"])
    assert result.exit_code == 2
    assert "QRPAY_SECDIST" in result.stderr
    assert "queue_database" not in result.stderr


def test_worker_with_the_development_secrets_is_refused(tmp_path: Path) -> None:
    path = Path(shutil.copy(REPO_DEV_CONFIG / "secdist.yaml", tmp_path / "secdist.yaml"))
    result = CliRunner().invoke(app, ["worker", "payments-eda"], env={"QRPAY_SECDIST": str(path)})
    assert result.exit_code == 2
    assert "development_secrets" in result.stderr


def test_production_refuses_development_sign_in(
    started: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = serve_eda(
        QRPAY_CONFIG=str(REPO_DEV_CONFIG / "config.yaml"),
        QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")),
    )
    assert result.exit_code == 2, result.output
    assert "development_sign_in" in result.stderr
    assert started == []


def test_a_start_with_a_bad_secdist_logs_no_secret(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secdist.yaml"
    path.write_text(yaml.safe_dump(bad_secdist()))
    env = {"QRPAY_SECDIST": str(path), "QRPAY_DATA_DIR": str(tmp_path / "var")}
    for command in (["serve", "iiko-integration"], ["worker", "payments-eda"], ["db", "upgrade"]):
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code == 2, (command, result.output)
        assert "secdist_invalid" in result.stderr or "api_keys.0.key" in result.stderr, command
        assert_nothing_secret(result.output + result.stderr)
    captured = capfd.readouterr()
    assert_nothing_secret(captured.out + captured.err)


@pytest.mark.parametrize(("field", "value"), [("hmac_keys", []), ("session_secrets", [""])])
def test_a_start_without_a_usable_key_is_refused(
    started: list[dict[str, Any]], tmp_path: Path, field: str, value: Any
) -> None:
    # Before: iiko-integration started, created an order, then answered 500 signing its link.
    path = production_secdist(tmp_path / "secdist.yaml", **{field: value})
    result = CliRunner().invoke(
        app,
        ["serve", "iiko-integration", "--port", str(free_port())],
        env={"QRPAY_SECDIST": str(path)},
    )
    assert result.exit_code == 2, result.output
    assert "secdist_invalid" in result.stderr
    assert field in result.stderr
    assert started == []
