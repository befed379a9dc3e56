"""`python -m qrpay_tools.cluster`: `--set` overrides and `restart` without a running cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from qrpay.kernel.config import load_secdist, load_yaml
from qrpay.kernel.service import SERVICE_MODULES
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay_tools import local
from qrpay_tools.cluster.run import (
    BadOverride,
    Layout,
    apply_overrides,
    main,
    nginx_config,
    process_env,
    write_service_secdists,
)
from qrpay_tools.ports import free_port_block


def dev_config() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(REPO_DEV_CONFIG / "config.yaml")
    return data


def test_set_puts_a_yaml_value_at_a_dotted_path() -> None:
    config = dev_config()
    apply_overrides(
        config,
        ["payments.hold_watchdog_seconds=10", "transactions.gateway.latency_ms=5"],
    )
    assert config["payments"]["hold_watchdog_seconds"] == 10
    assert config["transactions"]["gateway"]["latency_ms"] == 5
    assert config["payments"]["polling_delay_seconds"] == "1"  # the rest is untouched


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("payments.hold_watchdog_seconds", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("payments..x=3", "expected KEY=VALUE"),
        ("nowhere.at_all=3", "nowhere is not a config section"),
        ("payments.hold_watchdog_seconds.x=3", "is not a config section"),
        ("payments.hold_watchdog_seconds=-1", "the config is not valid"),
        ("payments.no_such_option=1", "the config is not valid"),
        ("payments.hold_watchdog_seconds=[1", "the value is not YAML"),
    ],
)
def test_a_bad_set_is_refused_with_the_reason(override: str, complaint: str) -> None:
    with pytest.raises(BadOverride, match=complaint):
        apply_overrides(dev_config(), [override])


def test_restart_of_an_unknown_instance_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = Layout(tmp_path, 9080)
    layout.pids.write_text(
        json.dumps({"processes": [{"name": "eda", "pid": 1, "port": 9100, "args": [], "env": {}}]})
    )
    assert main(["restart", "nope", "--var-dir", str(tmp_path)]) == 1
    said = capsys.readouterr().out
    assert "no instance 'nope'" in said
    assert "(instances: eda)" in said


def test_restart_without_a_cluster_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restart", "eda", "--var-dir", str(tmp_path)]) == 1
    assert "is the cluster up?" in capsys.readouterr().out


def test_restart_needs_an_instance_and_set_is_for_up(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["restart", "--var-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["down", "eda", "--var-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["down", "--set", "a=1", "--var-dir", str(tmp_path)])


def test_nginx_admits_a_bounded_number_of_requests_per_service_and_refuses_the_rest_as_json(
    tmp_path: Path,
) -> None:
    config = nginx_config(Layout(tmp_path, 9080, admission=7))
    assert "limit_conn_zone $server_port zone=in_flight" in config
    # One limit per listening server (api-proxy, iiko-integration, payments-eda).
    assert config.count("limit_conn in_flight 7;") == 3
    assert '"code": "overloaded"' in config
    assert "worker_connections 8192" in config


def test_nginx_tells_the_services_the_client_scheme_and_host(tmp_path: Path) -> None:
    config = nginx_config(Layout(tmp_path, 9080))
    # Set, never appended to: nginx is the first proxy, a client's own claims are dropped.
    assert "proxy_add_x_forwarded_for" not in config
    for header in (
        "X-Forwarded-For $remote_addr;",
        'Forwarded "";',
        "X-Forwarded-Proto $scheme;",
        "X-Forwarded-Host $http_host;",
        "Host $http_host;",
    ):
        assert config.count(f"proxy_set_header {header}") == 3, header


def test_up_without_nginx_says_how_to_install_it_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local.shutil, "which", lambda _name: None)
    monkeypatch.setattr(local, "SBIN", (str(tmp_path / "sbin"),))
    ran: list[object] = []
    monkeypatch.setattr(local.subprocess, "run", lambda *a, **k: ran.append(a))
    port_base = free_port_block(30)
    with pytest.raises(SystemExit) as exited:
        main(["up", "--var-dir", str(tmp_path), "--port-base", str(port_base)])
    assert str(exited.value) == (
        "error: nginx is not installed: run `make apt-nginx` (Debian: apt-get install -y nginx)"
    )
    assert ran == []


def test_each_cluster_process_holds_its_own_ticket_key_only(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 9080)
    layout.var.mkdir(parents=True, exist_ok=True)
    secdist = yaml.safe_load((REPO_DEV_CONFIG / "secdist.yaml").read_text())
    write_service_secdists(layout, secdist)
    for service in SERVICE_MODULES:
        env = process_env(layout, {"QRPAY_SECDIST": "shared"}, local.serve_args(service, 1))
        own = load_secdist(Path(env["QRPAY_SECDIST"]))
        assert set(own.ticket_keys.private) == {service}
        assert (
            own.ticket_keys.public
            == load_secdist(REPO_DEV_CONFIG / "secdist.yaml").ticket_keys.public
        )
    worker = process_env(layout, {}, local.worker_args(4))
    assert load_secdist(Path(worker["QRPAY_SECDIST"])).ticket_keys.private.keys() == {
        "payments-eda"
    }
