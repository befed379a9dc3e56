"""deploy/config/: the production config and secdist examples parse and pass the checks a
production start makes (kernel/production.py)."""

from __future__ import annotations

import yaml

from qrpay.kernel.settings import Settings
from qrpay.kernel.tickets import new_private_key, public_half
from qrpay.runner.config import check_config, check_secdist, parse_config, parse_secdist
from qrpay.runner.secrets import callers_by_service
from qrpay_tools import deploy


def test_the_production_examples_pass_the_production_checks() -> None:
    # staging: every production check but the sandbox gateway's, the only one qrpay has.
    settings = Settings(secdist=deploy.SECDIST_EXAMPLE, environment="staging")
    config = parse_config(yaml.safe_load(deploy.CONFIG.read_text()))
    data = yaml.safe_load(deploy.SECDIST_EXAMPLE.read_text())
    # payments-eda's shape, its placeholders filled as `qrpay secrets generate` fills them.
    keys = data["ticket_keys"]
    assert set(keys["private"]) == {"payments-eda"}
    assert set(keys["public"]) == callers_by_service()["payments-eda"]
    keys["private"] = {"payments-eda": [new_private_key()]}
    keys["public"] = {caller: [public_half(new_private_key())] for caller in keys["public"]}
    secdist = parse_secdist(data)
    check_config(settings, config)
    check_secdist(settings, secdist, "payments-eda")
    assert not config.sessions.development_sign_in
    assert not config.http.docs
    assert set(secdist.databases) == {"eda", "transactions", "cardstorage", "cashback"}
    assert secdist.queue_database
