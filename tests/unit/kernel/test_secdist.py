"""The secdist file: minimum lengths, hmac keys required, and nothing secret in an error (issue 11)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from qrpay.kernel.errors import QrpayError
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import runtime_from_files
from tests.support.secdist import (
    SIGNING_KEY,
    assert_nothing_secret,
    bad_secdist,
    dev_secdist_data,
)


def parse(data: dict[str, Any]) -> Any:
    from qrpay.runner.config import parse_secdist

    return parse_secdist(data)


def refused(data: dict[str, Any]) -> QrpayError:
    with pytest.raises(QrpayError) as caught:
        parse(data)
    assert caught.value.code == "secdist_invalid"
    return caught.value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_secret", ""),
        ("session_secret", "x" * 31),
        ("session_secrets", []),
        ("session_secrets", ["s" * 40, "short"]),
        ("hmac_keys", []),
        ("hmac_keys", ["k" * 15]),
        ("ticket_keys", {"private": {"eda": []}}),
        ("ticket_keys", {"public": {"eda": ["t" * 40]}}),  # 30 bytes
        ("ticket_keys", {"public": {"eda": ["not base64!"]}}),
        ("ticket_keys", {"private": {"someone": ["A" * 43]}}),
    ],
)
def test_short_or_missing_secrets_are_refused(field: str, value: Any) -> None:
    data = dev_secdist_data()
    data.pop("session_secret", None)
    data.pop("session_secrets", None)
    data["session_secrets"] = ["s" * 40]
    data[field] = value
    if field == "session_secret":
        data.pop("session_secrets")
    error = refused(data)
    assert field in error.message


def test_a_secdist_without_hmac_keys_is_refused() -> None:
    data = dev_secdist_data()
    data.pop("hmac_keys")
    assert "hmac_keys" in refused(data).message


def test_a_secdist_without_ticket_keys_is_refused() -> None:
    # Without them no service could call another: refused at start, not at the first call.
    data = dev_secdist_data()
    data.pop("ticket_keys")
    assert "ticket_keys" in refused(data).message


def test_a_refused_ticket_key_is_not_quoted() -> None:
    data = dev_secdist_data()
    secret = "Z" * 40 + "-not-a-key"
    data["ticket_keys"]["private"]["eda"] = [secret]
    error = refused(data)
    assert "ticket_keys.private.eda" in error.message
    assert secret not in error.message


def test_api_keys_are_at_least_sixteen_characters() -> None:
    data = dev_secdist_data()
    data["api_keys"][0]["key"] = "k" * 15
    refused(data)


def test_an_old_single_session_secret_still_reads() -> None:
    data = dev_secdist_data()
    data.pop("session_secrets", None)
    data["session_secret"] = "s" * 40
    assert [s.get_secret_value() for s in parse(data).session_secrets] == ["s" * 40]


def test_the_error_names_fields_and_error_types_only() -> None:
    error = refused(bad_secdist())
    assert_nothing_secret(f"{error} {error!r} {error.details}")
    assert "api_keys.0.key" in error.message
    assert "api_keys.0.key: too_short" in error.message
    assert "hmac_key" in error.message
    assert "extra_forbidden" in error.message
    assert error.__suppress_context__  # pydantic's error, with the input, is not chained


def test_a_yaml_error_does_not_quote_the_file(tmp_path: Path) -> None:
    from qrpay.runner.config import load_secdist

    path = tmp_path / "secdist.yaml"
    path.write_text(f'hmac_keys: ["{SIGNING_KEY}"\nsession_secret: {{ {SIGNING_KEY}')
    with pytest.raises(QrpayError) as caught:
        load_secdist(path)
    assert caught.value.code == "secdist_invalid"
    assert_nothing_secret(str(caught.value))


def test_a_rejected_reload_logs_no_secret(tmp_path: Path) -> None:
    config, secdist = tmp_path / "config.yaml", tmp_path / "secdist.yaml"
    config.write_text((REPO_DEV_CONFIG / "config.yaml").read_text())
    secdist.write_text(yaml.safe_dump(dev_secdist_data()))
    runtime = runtime_from_files(config, secdist)
    secdist.write_text(yaml.safe_dump(bad_secdist()))
    stamp = time.time_ns() + 2_000_000_000
    os.utime(secdist, ns=(stamp, stamp))
    with structlog.testing.capture_logs() as logs:
        assert not runtime.check_now()
    assert [entry["event"] for entry in logs] == ["config_rejected"]
    assert "api_keys.0.key" in logs[0]["reason"]
    assert_nothing_secret(repr(logs))
