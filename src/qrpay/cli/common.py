"""Pieces the commands share: settings from the environment, one-line failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import make_url

from qrpay.kernel.errors import QrpayError
from qrpay.kernel.settings import Settings

EXIT_ERROR = 2


def error_line(message: str) -> str:
    # Terminal and CI logs both stay readable only if the error is a single line.
    flat = " ".join(message.split())
    return flat if flat.startswith("error: ") else f"error: {flat}"


def say_error(message: str) -> None:
    typer.echo(error_line(message), err=True)


def settings_with(**defaults: Any) -> Settings:
    """Settings where an explicit QRPAY_* variable beats the value the command would pick."""
    chosen = {
        key: value
        for key, value in defaults.items()
        if value is not None and f"QRPAY_{key.upper()}" not in os.environ
    }
    return Settings(**chosen)


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable url>"


def describe(exc: BaseException) -> str:
    if isinstance(exc, QrpayError):
        # Its stable code first: what an operator searches the docs and logs for.
        return f"{exc.code}: {' '.join(exc.message.split())}"[:500]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def migrated(service: str, url: str) -> bool:
    """Bring the service's database to head; False (and the error said) when that failed."""
    from qrpay.kernel.migrations import upgrade

    try:
        upgrade(service, url)
    except Exception as exc:
        say_error(f"migrating {service} at {safe_url(url)} failed: {describe(exc)}")
        return False
    return True
