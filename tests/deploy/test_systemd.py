"""deploy/systemd/: `systemd-analyze verify` accepts every unit (each template with each
example instance, with its drop-ins), with nothing it warns about; the stop timeouts outlast
the drains; the payment path's units run at a lower CPU priority than the POS path's.

The units name /opt/qrpay/bin/qrpay (the release's venv) and verify checks that commands
exist, so they are verified as copies pointing at this checkout's venv. CI installs systemd
(.ci/run); elsewhere the test is skipped without systemd-analyze, failed under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qrpay.runner.registry import BY_NAME, PAYMENT_NICE
from qrpay_tools import deploy
from qrpay_tools.cluster.supervised import DRAIN

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_BIN = "/opt/qrpay/bin/"


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but systemd-analyze is missing (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    return found


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", "--man=no", *units],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def local_copies(tmp_path: Path) -> Path:
    venv_bin = str(Path(sys.executable).parent) + "/"
    for unit in UNITS.iterdir():
        if unit.is_file() and unit.suffix in (".service", ".target"):
            (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_BIN, venv_bin))
    for drop_in in UNITS.glob("*.service.d/*.conf"):
        copy = tmp_path / drop_in.relative_to(UNITS)
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(drop_in.read_text())
    return tmp_path


def instances() -> list[str]:
    served = [f"qrpay-serve@{env.stem}.service" for env in sorted((UNITS / "serve").glob("*.env"))]
    return [*served, "qrpay-worker@payments-eda.service", "qrpay-migrate.service", "qrpay.target"]


def test_systemd_accepts_every_unit_and_instance(tmp_path: Path) -> None:
    done = verify(local_copies(tmp_path), *instances())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == "", done.stdout + done.stderr


def test_the_drop_ins_are_what_the_generator_writes() -> None:
    written = deploy.systemd_drop_ins()
    on_disk = {str(path.relative_to(UNITS)) for path in UNITS.glob("*.service.d/*")}
    assert sorted(on_disk) == sorted(written), "run `make deploy-manifests`"
    stale = [name for name, text in written.items() if (UNITS / name).read_text() != text]
    assert stale == [], f"run `make deploy-manifests`: {stale} differ from what it writes"


@pytest.mark.parametrize(
    ("unit", "nice"),
    [
        ("qrpay-serve@iiko-integration.service", 0),
        ("qrpay-serve@eda.service", 0),
        ("qrpay-serve@payments-eda.service", PAYMENT_NICE),
        ("qrpay-serve@transactions.service", PAYMENT_NICE),
        ("qrpay-serve@cardstorage.service", PAYMENT_NICE),
        ("qrpay-serve@cashback.service", PAYMENT_NICE),
        ("qrpay-serve@api-proxy.service", PAYMENT_NICE),
        ("qrpay-worker@payments-eda.service", PAYMENT_NICE),
    ],
)
def test_the_payment_path_yields_the_cpu_to_the_pos_path(unit: str, nice: int) -> None:
    drop_in = UNITS / f"{unit}.d" / deploy.PRIORITY_DROP_IN
    service = unit.split("@")[1].removesuffix(".service")
    assert BY_NAME[service].nice == nice
    if not nice:
        assert not drop_in.exists()
        return
    values = dict(line.split("=", 1) for line in drop_in.read_text().splitlines() if "=" in line)
    assert values == {"Nice": str(nice), "CPUWeight": str(deploy.cpu_weight(nice))}
    # CPUWeight's default (100) is nice 0's: the same ratio as the kernel's 1,024 to 110.
    assert deploy.cpu_weight(0) == 100
    assert deploy.cpu_weight(PAYMENT_NICE) == 11


def test_a_broken_unit_is_refused(tmp_path: Path) -> None:
    # The check can fail: an unknown key and a missing command are reported.
    unit_dir = local_copies(tmp_path)
    serve = unit_dir / "qrpay-serve@.service"
    serve.write_text(serve.read_text().replace("KillMode=mixed", "KillMode=mixed\nKilMode=x"))
    worker = unit_dir / "qrpay-worker@.service"
    worker.write_text(worker.read_text().replace(str(Path(sys.executable).parent), "/nowhere"))
    # The drop-ins are read too.
    priority = unit_dir / "qrpay-worker@payments-eda.service.d" / deploy.PRIORITY_DROP_IN
    priority.write_text(priority.read_text() + "Nicee=3\n")
    done = verify(unit_dir, "qrpay-serve@eda.service", "qrpay-worker@payments-eda.service")
    said = done.stdout + done.stderr
    assert "Unknown key" in said, said
    assert "Unknown key 'Nicee'" in said, said
    assert done.returncode != 0, said


def test_every_example_instance_names_its_service_and_port() -> None:
    ports = set()
    for env in (UNITS / "serve").glob("*.env"):
        values = dict(line.split("=", 1) for line in env.read_text().split())
        assert values["QRPAY_SERVICE"] == env.stem
        ports.add(values["QRPAY_PORT"])
    assert len(ports) == len(list((UNITS / "serve").glob("*.env"))) == 7


def stop_timeout(unit: str) -> int:
    line = next(
        x for x in (UNITS / unit).read_text().splitlines() if x.startswith("TimeoutStopSec=")
    )
    return int(line.split("=")[1])


def test_the_stop_timeouts_outlast_the_drains() -> None:
    assert stop_timeout("qrpay-serve@.service") > DRAIN["serve"]
    assert stop_timeout("qrpay-worker@.service") > DRAIN["worker"]
