"""The change feed's order and its cursor. Pure: no I/O, no framework.

Every write to an order stamps the row with the number of the transaction that
made it (``change_tx``): PostgreSQL's xid (``pg_current_xact_id()``), or on
SQLite a counter taken under the write lock. The feed is the orders table read
in ``(change_tx, order_id)`` order; a row holds only its latest change, so a
follower may skip an intermediate status but never misses the current one.

Why xids and not a sequence: a sequence value taken at write time can commit
after a higher one, and a reader that already moved past the higher one would
never see it. An xid can commit late too, but PostgreSQL tells which ones may
still do so: every transaction with an xid below ``pg_snapshot_xmin`` of the
reader's snapshot has ended. So a page serves only rows below that horizon;
whatever commits later has an xid at or above it, i.e. after any cursor served
from that page. SQLite has one writer at a time, so commit order is write
order and every committed row is below the horizon.

The cursor is the key of the last change served, ``"<change_tx>:<order_id>"``;
it lives in the follower, so either side can restart and resume from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qrpay.eda.schemas import EdaCode, FeedCursor, parse_feed_cursor
from qrpay.kernel.errors import InvalidInput

# Larger than any transaction number: SQLite's horizon, where nothing commits out of order.
NO_HORIZON = 2**63 - 1


# A position in the feed (``eda.schemas``: one form for eda and its followers).
Cursor = FeedCursor


# Before every change, including the rows written before the feed existed (change_tx 0).
START = Cursor(-1, "")


def parse_cursor(text: str | None) -> Cursor:
    if not text:
        return START
    cursor = parse_feed_cursor(text)
    if cursor is None:
        raise InvalidInput(f"not a feed cursor: {text[:80]!r}", code=EdaCode.BAD_CURSOR)
    return cursor


def tail(horizon: int) -> Cursor:
    """The cursor after every change below ``horizon``: what a new follower starts from.

    Order ids are never empty, so ``(horizon, "")`` comes before every key at the horizon.
    """
    return Cursor(horizon, "")


@dataclass(frozen=True, slots=True)
class Page:
    """What one read of the feed serves: ``keys`` of the rows to send, and whether more
    changes are already committed after them (beyond ``limit``, or above the horizon)."""

    served: int
    more: bool


def page(keys: Sequence[int], horizon: int, limit: int) -> Page:
    """Of rows read in feed order (their ``change_tx``, at most ``limit + 1`` of them), how
    many may be served: the leading ones below the horizon, ``limit`` at most."""
    served = 0
    for change_tx in keys[:limit]:
        if change_tx >= horizon:
            break
        served += 1
    return Page(served=served, more=len(keys) > served)
