"""How many WebSocket streams one instance keeps open, per POS API key and in all (issue 20).

A stream is a connection held for hours: a leaked key (or a POS gone wrong) opening
them in a loop would hold the instance's descriptors and memory until it stopped
answering every other POS. So each key has ``push.max_streams_per_key`` of them and the
instance ``push.max_streams``; one more is refused at the handshake. Keys are held in
memory only, like the rate limiter's buckets, and never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class StreamRefusal(StrEnum):
    """Why a stream was refused: the ``reason`` label of its counter."""

    PER_KEY = "per_key"
    INSTANCE = "instance"


class StreamSlots:
    def __init__(self, per_key: Callable[[], int], total: Callable[[], int]) -> None:
        self._per_key = per_key
        self._total = total
        self._by_key: dict[str, int] = {}
        self.open = 0

    def take(self, key: str) -> StreamRefusal | None:
        """A slot for one more stream of ``key``, or why there is none."""
        if self.open >= self._total():
            return StreamRefusal.INSTANCE
        held = self._by_key.get(key, 0)
        if held >= self._per_key():
            return StreamRefusal.PER_KEY
        self._by_key[key] = held + 1
        self.open += 1
        return None

    def give_back(self, key: str) -> None:
        held = self._by_key.get(key, 0)
        if held <= 1:
            self._by_key.pop(key, None)
        else:
            self._by_key[key] = held - 1
        self.open -= 1

    def held_by(self, key: str) -> int:
        return self._by_key.get(key, 0)
