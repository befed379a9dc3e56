from __future__ import annotations

from typing import Any

from qrpay.iiko_integration.rollout import Rollout
from qrpay.kernel.config import Experiments

FLAG = "go_pay_enabled"


def experiments(targeting: Any = None, *, state: str = "ENABLED") -> Experiments:
    flag: dict[str, Any] = {
        "state": state,
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
    }
    if targeting is not None:
        flag["targeting"] = targeting
    return Experiments(flags={FLAG: flag}, availability_flag=FLAG)


def rules(percent: int = 50) -> Experiments:
    return experiments(
        {
            "if": [
                {"in": [{"var": "uuid"}, ["vip-1", "vip-2"]]},
                "on",
                {"in": [{"var": "nearest_zone"}, ["moscow"]]},
                "on",
                {"in": [{"var": "nearest_zone"}, ["spb"]]},
                {
                    "fractional": [
                        {"cat": [{"var": "$flagd.flagKey"}, {"var": "uuid"}]},
                        ["on", percent],
                        ["off", 100 - percent],
                    ]
                },
                "off",
            ]
        }
    )


def available(rollout: Rollout, exp: Experiments, uuid: str, zone: str) -> bool:
    return rollout.is_available(exp, uuid=uuid, phone_id="phone-1", nearest_zone=zone)


def test_zone_on_and_zone_off() -> None:
    rollout, exp = Rollout(), rules()
    assert available(rollout, exp, "someone", "moscow")
    assert not available(rollout, exp, "someone", "kazan")


def test_allowlist_wins_in_any_zone() -> None:
    rollout, exp = Rollout(), rules()
    assert available(rollout, exp, "vip-1", "kazan")
    assert not available(rollout, exp, "vip-10", "kazan")


def test_percentage_is_roughly_right_and_stable() -> None:
    rollout, exp = Rollout(), rules(percent=30)
    decisions = [available(rollout, exp, f"user-{i}", "spb") for i in range(10_000)]
    share = sum(decisions) / len(decisions)
    assert 0.27 < share < 0.33
    # The same user always gets the same answer.
    for i in range(200):
        assert available(rollout, exp, f"user-{i}", "spb") == decisions[i]


def test_missing_or_disabled_flag_means_off() -> None:
    assert not available(Rollout(), Experiments(flags={}, availability_flag=FLAG), "u", "moscow")
    disabled = experiments({"if": [True, "on", "off"]}, state="DISABLED")
    assert not available(Rollout(), disabled, "u", "moscow")


def test_new_config_object_rebuilds_the_evaluator() -> None:
    rollout = Rollout()
    on = experiments({"if": [True, "on", "off"]})
    off = experiments({"if": [True, "off", "on"]})
    assert available(rollout, on, "u", "z")
    assert not available(rollout, off, "u", "z")
    assert available(rollout, on, "u", "z")
