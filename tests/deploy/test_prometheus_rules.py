"""deploy/prometheus's rules: valid (`promtool check rules`), each alert firing on its signal
and quiet without it (`promtool test rules` on deploy/prometheus/tests), each with a runbook."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.support.prometheus import PROMETHEUS_DIR, RULE_FILES, alert_names, binary

UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rule_files_are_valid() -> None:
    done = promtool("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_scrape_config_is_valid() -> None:
    done = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_and_stays_quiet_in_the_rule_unit_tests() -> None:
    done = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    # Every alert has a case where it fires (an expected alert) and one where it is quiet.
    firing, quiet = set(), set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts never made to fire"
    assert names - quiet == set(), "alerts never checked quiet"


def test_every_alert_has_its_runbook_section() -> None:
    readme = (PROMETHEUS_DIR / "README.md").read_text()
    headings = {m.lower() for m in re.findall(r"^### (\w+)$", readme, flags=re.MULTILINE)}
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        name = rule["alert"]
        assert name.lower() in headings, f"no '### {name}' runbook in README.md"
        assert rule["annotations"]["runbook"] == f"deploy/prometheus/README.md#{name.lower()}"
