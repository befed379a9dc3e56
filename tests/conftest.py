from __future__ import annotations

from qrpay.kernel.logging import configure_logging

configure_logging("WARNING", "console")

# Shared fixtures live in tests/plugins/; helpers in tests/support/. No conftest imports
# another, and no test imports a conftest.
pytest_plugins = ["tests.plugins.core", "tests.plugins.postgres", "tests.plugins.cluster"]
