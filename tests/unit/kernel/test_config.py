import os
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.config import parse_config, parse_secdist, runtime_from_files


def _dev(name: str) -> dict:
    return yaml.safe_load((REPO_DEV_CONFIG / name).read_text())


def test_dev_files_are_valid() -> None:
    config = parse_config(_dev("config.yaml"))
    secdist = parse_secdist(_dev("secdist.yaml"))
    assert {r.zone for r in config.restaurants} >= {"moscow", "spb"}
    assert len({r.cashback_rate for r in config.restaurants}) > 1
    assert secdist.api_keys[0].client_ids >= {"rest-1", "rest-2"}


@pytest.mark.parametrize(
    "mutation",
    [
        lambda c: c["restaurants"][0].update(cashback_rate="150"),
        lambda c: c["restaurants"][0].update(currencies=["XXX"]),
        lambda c: c["restaurants"].append(dict(c["restaurants"][0])),
        lambda c: c.update(bill_text_templates={"ru": "no rate here"}),
        lambda c: c.update(unknown_section=1),
        lambda c: c["experiments"]["flags"]["go_pay_enabled"].pop("variants"),
        lambda c: c["services"].update(nonsense={"base_url": "http://x"}),
    ],
)
def test_invalid_configs_are_rejected(mutation) -> None:
    data = _dev("config.yaml")
    mutation(data)
    with pytest.raises(ValidationError):
        parse_config(data)


def _cashback(data: dict, **rules: object) -> dict:
    data["cashback"] = {**data.get("cashback", {}), **rules}
    return data


@pytest.mark.parametrize(
    ("mutation", "says"),
    [
        # A restaurant that takes yen cannot pay kopecks of cashback.
        (
            lambda c: _cashback(c, rounding_places=1)["restaurants"][1].update(
                currencies=["RUB", "JPY"]
            ),
            "cashback.rounding_places 1 is finer than JPY's 0",
        ),
        (
            lambda c: c["restaurants"][0].update(cashback_cap="3000.5"),
            "'rest-1' cashback_cap 3000.5 has more decimal places than",
        ),
        (
            lambda c: _cashback(c, rounding_places=1, default_cap="10.05"),
            "cashback.default_cap 10.05 has more decimal places than",
        ),
    ],
)
def test_cashback_the_currency_cannot_represent_is_refused(mutation, says: str) -> None:
    data = _dev("config.yaml")
    mutation(data)
    with pytest.raises(ValidationError) as refused:
        parse_config(data)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda c: _cashback(c, rounding_places=2, default_cap="10.05"),
        lambda c: c["restaurants"][0].update(cashback_cap="3000.00"),  # a whole number
        lambda c: _cashback(c, rounding_places=0)["restaurants"][0].update(currencies=["JPY"]),
        lambda c: _cashback(c, rounding_places=1)["restaurants"][0].update(cashback_cap="2.5"),
    ],
)
def test_cashback_the_currency_can_represent_is_taken(mutation) -> None:
    data = _dev("config.yaml")
    mutation(data)
    parse_config(data)


def test_secrets_do_not_print() -> None:
    secdist = parse_secdist(_dev("secdist.yaml"))
    assert "demo-pos-key" not in repr(secdist)
    assert "dev-hmac" not in str(secdist)


def _write(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    # Make sure the change is visible even on coarse mtime file systems.
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _watched(tmp_path: Path) -> tuple[Path, RuntimeConfig, list[int]]:
    """The dev files written to ``tmp_path``, their live config, and its changes seen."""
    config_path, secdist_path = tmp_path / "config.yaml", tmp_path / "secdist.yaml"
    _write(config_path, _dev("config.yaml"))
    _write(secdist_path, _dev("secdist.yaml"))
    runtime = runtime_from_files(config_path, secdist_path)
    seen: list[int] = []
    runtime.on_change(lambda: seen.append(1))
    return config_path, runtime, seen


def test_reload_takes_good_changes_and_keeps_last_good_on_bad(tmp_path: Path) -> None:
    config_path, runtime, seen = _watched(tmp_path)
    data = _dev("config.yaml")
    assert runtime.config.restaurants[0].cashback_rate == 30

    data["restaurants"][0]["cashback_rate"] = "35"
    _write(config_path, data)
    assert runtime.check_now()
    assert runtime.config.restaurants[0].cashback_rate == 35
    assert seen == [1]

    config_path.write_text("restaurants: [this is: not valid")
    os.utime(config_path, ns=(time.time_ns() + 2_000_000_000,) * 2)
    assert not runtime.check_now()
    assert runtime.config.restaurants[0].cashback_rate == 35

    data["restaurants"][0]["cashback_rate"] = "-1"
    _write(config_path, data)
    assert not runtime.check_now()
    assert runtime.config.restaurants[0].cashback_rate == 35
    assert runtime._config.rejections == 2  # type: ignore[attr-defined]


def test_reload_refuses_cashback_the_currency_cannot_represent(tmp_path: Path) -> None:
    config_path, runtime, seen = _watched(tmp_path)
    data = _dev("config.yaml")
    data["cashback"]["rounding_places"] = 2
    data["restaurants"][0]["currencies"] = ["JPY"]
    _write(config_path, data)
    assert not runtime.check_now()
    assert runtime.config.cashback.rounding_places == 0
    assert runtime.config.restaurants[0].currencies == ("RUB",)

    data = _dev("config.yaml")
    data["restaurants"][0]["cashback_cap"] = "3000.25"
    _write(config_path, data)
    assert not runtime.check_now()
    assert runtime.config.restaurants[0].cashback_cap == 3000
    assert runtime._config.rejections == 2  # type: ignore[attr-defined]
    assert seen == []


def test_bulkhead_and_status_deadline_have_defaults_and_bounds() -> None:
    data = _dev("config.yaml")
    data["services"]["cashback"].pop("max_in_flight", None)
    data["orders"].pop("status_deadline_ms", None)
    config = parse_config(data)
    assert config.dependency("cashback").max_in_flight == 128
    assert config.orders.status_deadline_ms == 1000
    for mutation in (
        lambda c: c["services"]["eda"].update(max_in_flight=0),
        lambda c: c["orders"].update(status_deadline_ms=5),
    ):
        bad = _dev("config.yaml")
        mutation(bad)
        with pytest.raises(ValidationError):
            parse_config(bad)


def test_pool_sizes_are_configured_per_service_and_for_the_queue() -> None:
    from qrpay.kernel.queue import queue_pool

    data = _dev("config.yaml")
    data["database_pools"] = {"default": 12, "services": {"eda": 30}, "queue": 6}
    pools = parse_config(data).database_pools
    assert pools.size_for("eda") == 30
    assert pools.size_for("cashback") == 12
    pool = queue_pool("dbname=unused", pools.queue)  # not opened: no database needed
    assert (pool.min_size, pool.max_size) == (6, 6)
    defaults = parse_config(_dev("config.yaml")).database_pools
    assert (defaults.size_for("transactions"), defaults.queue) == (20, 4)


@pytest.mark.parametrize(
    "pools",
    [{"services": {"nonsense": 3}}, {"services": {"eda": 0}}, {"default": 0}, {"queue": 0}],
)
def test_bad_pool_sizes_are_refused(pools: dict) -> None:
    data = _dev("config.yaml")
    data["database_pools"] = pools
    with pytest.raises(ValidationError):
        parse_config(data)
