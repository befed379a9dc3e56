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


def test_a_development_service_ticket_key_among_fresh_ones_is_refused(
    started: list[dict[str, Any]], tmp_path: Path
) -> None:
    # With it anyone could sign a ticket naming any service (payments-eda: card tokens).
    dev_key = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())["service_ticket_keys"][
        0
    ]
    fresh = [secrets.token_hex(32), dev_key]
    path = production_secdist(tmp_path / "secdist.yaml", service_ticket_keys=fresh)
    result = serve_eda(QRPAY_SECDIST=str(path))
    assert result.exit_code == 2, result.output
    assert "service_ticket_keys" in result.stderr
    assert dev_key not in result.output + result.stderr
    assert started == []


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
    result = serve_eda(QRPAY_SECDIST=str(production_secdist(tmp_path / "secdist.yaml")))
    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_the_development_flag_allows_the_development_secrets(
    started: list[dict[str, Any]],
) -> None:
    result = serve_eda(QRPAY_ENVIRONMENT="development")
    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_an_unknown_environment_is_refused(started: list[dict[str, Any]]) -> None:
    result = serve_eda(QRPAY_ENVIRONMENT="staging")
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
