"""The one check of a move in a state table: a payment's (``eda.ledger``) and a refund
part's (``eda.refunds``) alike.

Pure: no I/O, no framework.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Generic, TypeVar

State = TypeVar("State", bound=StrEnum)


class MoveRefused(Exception, Generic[State]):
    """A move the table forbids."""

    def __init__(self, what: str, current: State, to: State) -> None:
        super().__init__(f"{what}: {current} -> {to}")
        self.current = current
        self.to = to

    @classmethod
    def check(
        cls, what: str, current: State, to: State, allowed: Collection[tuple[State, State]]
    ) -> bool:
        """Whether ``what`` moves from ``current`` to ``to``: False when it is there already
        (a replay); raises when the table ``allowed`` forbids the move."""
        if current == to:
            return False
        if (current, to) not in allowed:
            raise cls(what, current, to)
        return True
