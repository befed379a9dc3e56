"""Files that are re-read when they change; a bad version is refused and the last good one kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from qrpay.kernel.config import KernelConfig, Secdist
from qrpay.kernel.production import ProductionCheck, check_config, check_secdist
from qrpay.kernel.settings import Settings

T = TypeVar("T")
# The product's config model (``runner.config``): the kernel reads its own sections of it.
C = TypeVar("C", bound=KernelConfig)
log = structlog.get_logger("qrpay.config")


class WatchedFile(Generic[T]):
    def __init__(self, path: Path, load: Callable[[Path], T], *, kind: str) -> None:
        self.path = path
        # Reads and validates the file; its errors may be logged, so a secdist's never
        # quote a value (kernel.config.load_secdist).
        self._load = load
        self._kind = kind
        self._stamp: tuple[int, int] | None = None
        self.current: T = self._load_first()
        self.rejections = 0

    def _read_stamp(self) -> tuple[int, int]:
        stat = os.stat(self.path)
        return stat.st_mtime_ns, stat.st_size

    def _load_first(self) -> T:
        # At start-up a bad file is fatal: there is no last good one to keep.
        self._stamp = self._read_stamp()
        return self._load(self.path)

    def reload_if_changed(self) -> bool:
        """Re-read the file if it changed; return True when a new version was taken."""
        try:
            stamp = self._read_stamp()
        except OSError as exc:
            log.warning("config_unreadable", kind=self._kind, path=str(self.path), reason=str(exc))
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            value = self._load(self.path)
        except Exception as exc:
            self.rejections += 1
            log.error(
                "config_rejected",
                kind=self._kind,
                path=str(self.path),
                reason=str(exc)[:2000],
                kept="last good version",
            )
            return False
        self.current = value
        log.info("config_reloaded", kind=self._kind, path=str(self.path))
        return True


@dataclass(frozen=True)
class ConfigFiles(Generic[C]):
    """How a product reads its two files, and what its production refuses in the config:
    the kernel knows its own sections only (``runner.config`` composes the rest)."""

    load_config: Callable[[Path], C]
    load_secdist: Callable[[Path], Secdist]
    # Each takes the config and returns a refusal (ConfigRefused) or None (kernel.production).
    production_checks: Sequence[ProductionCheck] = ()


class RuntimeConfig(Generic[C]):
    """The live config and secdist of a process. ``C``: the product's config model, for
    the services' typing (the kernel reads only ``KernelConfig``'s sections)."""

    def __init__(self, config: WatchedFile[C], secdist: WatchedFile[Secdist]) -> None:
        self._config = config
        self._secdist = secdist
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def from_files(
        cls, config_path: Path, secdist_path: Path, files: ConfigFiles[C]
    ) -> RuntimeConfig[C]:
        """``files``: how the product reads its config and secdist (``runner.config``)."""
        return cls(
            WatchedFile(config_path, files.load_config, kind="config"),
            WatchedFile(secdist_path, files.load_secdist, kind="secdist"),
        )

    @classmethod
    def for_settings(
        cls, settings: Settings, files: ConfigFiles[C], service: str | None = None
    ) -> RuntimeConfig[C]:
        """The files ``settings`` name, refused (at start and on reload) when the environment
        forbids them: development secrets or sign-in in production (kernel.production);
        ``service``: the one service this process runs (None: several, or none)."""
        load_secdist = files.load_secdist
        load_config = files.load_config
        checks = files.production_checks
        # The secdist first: public secrets are the worse mistake, and reported first.
        secdist = WatchedFile(
            settings.secdist,
            lambda path: check_secdist(settings, load_secdist(path), load_secdist, service),
            kind="secdist",
        )
        config = WatchedFile(
            settings.config,
            lambda path: check_config(settings, load_config(path), checks),
            kind="config",
        )
        return cls(config, secdist)

    @classmethod
    def fixed(cls, config: C, secdist: Secdist) -> RuntimeConfig[C]:
        """A config that never changes, for tests."""
        instance = cls.__new__(cls)
        instance._config = _Fixed(config)  # type: ignore[assignment]
        instance._secdist = _Fixed(secdist)  # type: ignore[assignment]
        instance._task = None
        instance._listeners = []
        return instance

    @property
    def config(self) -> C:
        return self._config.current

    @property
    def secdist(self) -> Secdist:
        return self._secdist.current

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def check_now(self) -> bool:
        changed = self._config.reload_if_changed() | self._secdist.reload_if_changed()
        if changed:
            for listener in self._listeners:
                listener()
        return changed

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.config_reload_interval_seconds)
            self.check_now()

    def start(self) -> None:
        if self._task is None and not isinstance(self._config, _Fixed):
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class _Fixed(Generic[T]):
    def __init__(self, value: T) -> None:
        self.current = value

    def reload_if_changed(self) -> bool:
        return False
