"""The e2e tests' `qrpay up`: every service in one process on free ports, its own data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qrpay.runner.registry import SERVICE_MODULES
from tests.support.processes import QrpayUp


@pytest.fixture
def up(tmp_path: Path) -> Iterator[QrpayUp]:
    with QrpayUp.running(tmp_path, SERVICE_MODULES) as instance:
        yield instance
