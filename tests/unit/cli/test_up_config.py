from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qrpay.kernel.config import load_yaml
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import parse_config, parse_secdist
from qrpay.runner.embedded import client_host, embedded_config, ports_for, prepare_data_dir
from qrpay.runner.registry import DEFAULT_PORTS


def test_ports_follow_the_base() -> None:
    assert ports_for(8080) == DEFAULT_PORTS
    shifted = ports_for(20000)
    assert shifted["api-proxy"] == 20000
    assert shifted["iiko-integration"] == 20001
    assert shifted["cashback"] == 20006


def test_config_points_every_service_and_the_deeplink_at_the_chosen_ports() -> None:
    data = embedded_config(load_yaml(REPO_DEV_CONFIG / "config.yaml"), "127.0.0.1", 30000)
    config = parse_config(data)
    for name, port in ports_for(30000).items():
        assert config.dependency(name).base_url == f"http://127.0.0.1:{port}"
    assert config.deeplink.base == "http://127.0.0.1:30000/go-pay/orders"
    # Everything else stays as in the dev config.
    assert config.dependency("transactions").retries == 2
    assert [r.client_id for r in config.restaurants] == ["rest-1", "rest-2", "rest-3"]


def test_wildcard_bind_gives_a_dialable_address() -> None:
    assert client_host("0.0.0.0") == "127.0.0.1"
    data = embedded_config({}, "0.0.0.0", 8080)
    assert data["services"]["eda"]["base_url"] == "http://127.0.0.1:8083"


def test_first_start_writes_the_files_later_starts_keep_edits(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    files = prepare_data_dir(data_dir, "127.0.0.1", 40000)
    assert files.config_written
    assert files.secdist_written
    assert parse_secdist(load_yaml(files.secdist)) == parse_secdist(
        load_yaml(REPO_DEV_CONFIG / "secdist.yaml")
    )
    config = parse_config(load_yaml(files.config))
    assert config.dependency("iiko-integration").base_url == "http://127.0.0.1:40001"

    # An operator's edit survives a restart on the same ports.
    data = load_yaml(files.config)
    data["orders"]["ttl_seconds"] = 60
    files.config.write_text(yaml.safe_dump(data, allow_unicode=True))
    again = prepare_data_dir(data_dir, "127.0.0.1", 40000)
    assert not again.config_written
    assert not again.secdist_written
    assert parse_config(load_yaml(files.config)).orders.ttl_seconds == 60

    # A different port base moves only the URLs.
    moved = prepare_data_dir(data_dir, "127.0.0.1", 41000)
    assert moved.config_written
    config = parse_config(load_yaml(files.config))
    assert config.dependency("eda").base_url == "http://127.0.0.1:41003"
    assert config.orders.ttl_seconds == 60


def test_the_embedded_mode_keeps_the_development_sign_in_on_unless_turned_off() -> None:
    # A data directory written before the switch existed has no sessions section.
    assert embedded_config({}, "127.0.0.1", 8080)["sessions"]["development_sign_in"] is True
    off = {"sessions": {"development_sign_in": False, "ttl_seconds": 3600}}
    assert embedded_config(off, "127.0.0.1", 8080)["sessions"] == off["sessions"]


@pytest.mark.parametrize("before", ["no tickets", "one shared ticket key"])
def test_a_data_directory_from_before_per_service_ticket_keys_gets_them(
    tmp_path: Path, before: str
) -> None:
    data_dir = tmp_path / "var"
    files = prepare_data_dir(data_dir, "127.0.0.1", 40000)
    old = load_yaml(files.secdist)
    del old["ticket_keys"]
    if before == "one shared ticket key":  # issue 11's
        old["service_ticket_keys"] = ["dev-service-ticket-key-0123456789abcdef-public"]
    files.secdist.write_text(yaml.safe_dump(old))
    config = load_yaml(files.config)
    del config["service_tickets"]
    files.config.write_text(yaml.safe_dump(config, allow_unicode=True))

    again = prepare_data_dir(data_dir, "127.0.0.1", 40000)
    assert again.secdist_written
    development = parse_secdist(load_yaml(REPO_DEV_CONFIG / "secdist.yaml"))
    secdist = parse_secdist(load_yaml(files.secdist))
    assert secdist.ticket_keys == development.ticket_keys
    assert parse_config(load_yaml(files.config)).service_tickets.tools_allowed is True
    # Only once: a later start changes nothing.
    assert not prepare_data_dir(data_dir, "127.0.0.1", 40000).secdist_written
