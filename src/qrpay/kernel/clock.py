"""Time as a dependency, so tests can freeze it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


def utc(value: datetime) -> datetime:
    """SQLite drops tzinfo; treat naive datetimes from the database as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def wire_time(value: datetime) -> str:
    """A UTC timestamp as the JSON APIs write it (the way pydantic does: ``...Z``)."""
    text = utc(value).astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
