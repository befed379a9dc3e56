"""A running production process refuses a reload that brings development secrets or sign-in."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import structlog
import yaml

from qrpay.kernel.settings import REPO_DEV_CONFIG, Environment, Settings
from qrpay.runner.config import runtime_for_settings
from tests.support.secdist import production_config, production_secdist


def touch(path: Path) -> None:
    stamp = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_a_reload_to_development_values_is_refused_and_the_last_good_kept(
    tmp_path: Path,
) -> None:
    config = production_config(tmp_path / "config.yaml")
    secdist = production_secdist(tmp_path / "secdist.yaml")
    # Staging: production's checks of secrets and switches, on the sandbox gateway.
    settings = Settings(config=config, secdist=secdist, environment=Environment.STAGING)
    runtime = runtime_for_settings(settings, "eda")
    signing = runtime.secdist.hmac_keys[0].get_secret_value()

    shutil.copy(REPO_DEV_CONFIG / "secdist.yaml", secdist)
    touch(secdist)
    data = yaml.safe_load(config.read_text())
    data["sessions"]["development_sign_in"] = True
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    touch(config)
    with structlog.testing.capture_logs() as logs:
        assert not runtime.check_now()
    assert sorted(entry["kind"] for entry in logs) == ["config", "secdist"]
    assert all(entry["event"] == "config_rejected" for entry in logs)
    assert runtime.secdist.hmac_keys[0].get_secret_value() == signing
    assert runtime.config.sessions.development_sign_in is False


def test_development_takes_them(tmp_path: Path) -> None:
    settings = Settings(
        config=REPO_DEV_CONFIG / "config.yaml",
        secdist=REPO_DEV_CONFIG / "secdist.yaml",
        environment=Environment.DEVELOPMENT,
    )
    runtime = runtime_for_settings(settings)
    assert runtime.config.sessions.development_sign_in is True
