"""``qrpay db upgrade``."""

from __future__ import annotations

from rich.console import Console

from qrpay.cli.common import describe, safe_url, say_error, settings_with
from qrpay.kernel.config import load_yaml, parse_secdist
from qrpay.kernel.migrations import upgrade
from qrpay.runner.context import has_database, services_with_database


def run_upgrade(names: list[str], *, console: Console) -> int:
    settings = settings_with()
    try:
        secdist = parse_secdist(load_yaml(settings.secdist))
    except Exception as exc:
        say_error(f"cannot read secdist {settings.secdist}: {describe(exc)}")
        return 2
    targets = names or services_with_database()
    unknown = [name for name in targets if not has_database(name)]
    if unknown:
        say_error(
            f"no database for {', '.join(unknown)}; "
            f"services with one: {', '.join(services_with_database()) or 'none yet'}"
        )
        return 2
    for name in targets:
        url = settings.database_url(name, secdist.databases)
        try:
            upgrade(name, url)
        except Exception as exc:
            say_error(f"migrating {name} at {safe_url(url)} failed: {describe(exc)}")
            return 2
        console.print(f"{name}: at head ({safe_url(url)})", markup=False)
    return 0
