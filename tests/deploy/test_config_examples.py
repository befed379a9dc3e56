"""deploy/config/: the production config and secdist examples parse and pass the checks a
production start makes (kernel/production.py)."""

from __future__ import annotations

import yaml

from qrpay.kernel.config import parse_config, parse_secdist
from qrpay.kernel.production import check_config, check_secdist
from qrpay.kernel.settings import Settings
from qrpay_tools import deploy


def test_the_production_examples_pass_the_production_checks() -> None:
    settings = Settings(secdist=deploy.SECDIST_EXAMPLE, environment="production")
    config = parse_config(yaml.safe_load(deploy.CONFIG.read_text()))
    secdist = parse_secdist(yaml.safe_load(deploy.SECDIST_EXAMPLE.read_text()))
    check_config(settings, config)
    check_secdist(settings, secdist)
    assert not config.sessions.development_sign_in
    assert not config.http.docs
    assert set(secdist.databases) == {"eda", "transactions", "cardstorage", "cashback"}
    assert secdist.queue_database
