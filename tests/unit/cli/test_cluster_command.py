"""`python -m qrpay_tools.cluster`: `--set` overrides, `restart` without a running cluster, the
supervisord config and the nice level each program runs at."""

from __future__ import annotations

import configparser
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import load_secdist
from qrpay.runner.registry import BY_NAME, PAYMENT_NICE, SERVICE_MODULES
from qrpay_tools import local
from qrpay_tools.cluster import supervised
from qrpay_tools.cluster.run import (
    NGINX,
    WORKER,
    BadOverride,
    Layout,
    apply_overrides,
    down,
    launch,
    main,
    nginx_config,
    process_env,
    programs,
    serve_program,
    worker_program,
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


def program_sections(layout: Layout) -> dict[str, configparser.SectionProxy]:
    """The ``[program:NAME]`` sections of the supervisord.conf `up` writes, by NAME."""
    config = configparser.RawConfigParser()
    config.read_string(supervised.config_text(layout.var, programs(layout, "/usr/sbin/nginx")))
    return {
        name.removeprefix("program:"): config[name]
        for name in config.sections()
        if name.startswith("program:")
    }


def test_supervisord_restarts_rotates_and_outwaits_each_programs_drain(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "100%", 9080)
    sections = program_sections(layout)
    names = [name for name, _, _ in layout.instances] + [WORKER, NGINX]
    assert [name for name in sections if name in names] == names
    for name in names:
        program = sections[name]
        assert program["autorestart"] == "true"
        assert int(program["startretries"]) > 1
        assert program["stdout_logfile"].endswith(f"/100%%/logs/{name}.log")
        assert program["stdout_logfile_maxbytes"] == supervised.LOG_MAX_BYTES
        assert int(program["stdout_logfile_backups"]) > 0
        assert program["stopasgroup"] == program["killasgroup"] == "true"
    # SIGKILL only after the longest graceful stop: uvicorn's 10 s, procrastinate's 20 s.
    assert int(sections["eda"]["stopwaitsecs"]) > 10
    assert sections["eda"]["stopsignal"] == "TERM"
    assert int(sections[WORKER]["stopwaitsecs"]) > 20
    assert sections[NGINX]["stopsignal"] == "QUIT"
    assert "daemon off;" in sections[NGINX]["command"]
    # Stopped first, started last: the worker, then the services, nginx at the end.
    priority = {name: int(sections[name]["priority"]) for name in names}
    assert priority[WORKER] > priority["eda"] > priority[NGINX]


def test_restart_of_an_unknown_program_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = Layout(tmp_path, 9080)
    launch(layout, {}, [supervised.Program("eda", ["sleep", "60"], "serve")])
    try:
        assert main(["restart", "nope", "--var-dir", str(tmp_path)]) == 1
        said = capsys.readouterr().out
        assert "no program 'nope'" in said
        assert "(programs: eda)" in said
    finally:
        assert main(["down", "--var-dir", str(tmp_path)]) == 0
    assert not supervised.Supervisor(layout.var).answering()


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


def started_pid(supervisor: supervised.Supervisor, name: str) -> int:
    deadline = time.monotonic() + 60
    while not (pid := int(supervisor.info(name)["pid"])) or _still_nice(pid):
        assert time.monotonic() < deadline, f"supervisord did not start {name}"
        time.sleep(0.05)
    return pid


def _still_nice(pid: int) -> bool:
    """Whether ``pid`` is still `nice` itself, before it lowered its priority and became the
    program (a pid read in between has the default level)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "nice"
    except OSError:
        return False


def test_the_payment_path_runs_niced_and_the_pos_path_does_not(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 9080)
    commands = {name: section["command"] for name, section in program_sections(layout).items()}
    niced = f"nice -n {PAYMENT_NICE} "
    for name in ("payments-eda-1", "payments-eda-2", WORKER, "transactions", "api-proxy"):
        assert commands[name].startswith(niced + local.QRPAY), commands[name]
    for name in ("iiko-integration-1", "iiko-integration-2", "eda", NGINX):
        assert not commands[name].startswith("nice"), commands[name]
    for name, service, _ in layout.instances:
        assert commands[name].startswith(niced) == bool(BY_NAME[service].nice)


def test_supervisord_starts_each_program_at_its_services_nice_level(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 9080)
    sleeping = ["sleep", "120"]
    started = [
        replace(serve_program("payments-eda-1", "payments-eda", 1), args=sleeping),
        replace(worker_program(), args=sleeping),
        replace(serve_program("iiko-integration-1", "iiko-integration", 2), args=sleeping),
    ]
    launch(layout, {}, started)
    supervisor = supervised.Supervisor(layout.var)
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        nice = {
            program.name: os.getpriority(os.PRIO_PROCESS, started_pid(supervisor, program.name))
            for program in started
        }
    finally:
        assert down(layout, quiet=True, patience=0.5) == 0
    paying = min(own + PAYMENT_NICE, 19)
    assert nice == {"payments-eda-1": paying, WORKER: paying, "iiko-integration-1": own}


def test_down_with_patience_kills_a_program_that_ignores_sigterm(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 9080)
    stubborn = ["sh", "-c", "trap '' TERM; exec sleep 120"]
    launch(layout, {}, [supervised.Program("stubborn", stubborn, "worker")])
    supervisor = supervised.Supervisor(layout.var)
    pid = started_pid(supervisor, "stubborn")
    began = time.monotonic()
    assert down(layout, quiet=True, patience=0.5) == 0
    # Without the patience supervisord would have waited its stopwaitsecs (drain + margin).
    assert time.monotonic() - began < supervised.DRAIN["worker"] + supervised.STOP_MARGIN
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not supervisor.answering()


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
