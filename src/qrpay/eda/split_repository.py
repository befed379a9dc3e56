"""A split bill's shares and their reserved items (tables in ``eda.repository``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from qrpay.eda.repository import order_share_items, order_shares
from qrpay.eda.schemas import ShareState
from qrpay.eda.split import Share
from qrpay.kernel.clock import utc
from qrpay.kernel.db import Database
from qrpay.kernel.money import format_amount
from qrpay.kernel.repository import Repository

# A share's id -> (began, last changed).
ShareTimes = dict[str, tuple[datetime, datetime]]


def _to_share(row: Row[Any]) -> Share:
    m = row._mapping
    return Share(
        id=m["id"],
        amount=Decimal(m["amount"]),
        tip=Decimal(m["tip"]),
        items=frozenset(m["items"]),
        state=ShareState(m["state"]),
    )


class ShareRepository(Repository):
    async def of_order(self, order_id: str) -> tuple[tuple[Share, ...], ShareTimes]:
        """The order's shares in the order they began, and when each began and last changed."""
        result = await self.session.execute(
            select(order_shares)
            .where(order_shares.c.order_id == order_id)
            .order_by(order_shares.c.created_at, order_shares.c.id)
        )
        rows = result.all()
        shares = tuple(_to_share(row) for row in rows)
        times = {
            row._mapping["id"]: (utc(row._mapping["created_at"]), utc(row._mapping["updated_at"]))
            for row in rows
        }
        return shares, times

    async def add(self, order_id: str, share: Share, currency: str, now: datetime) -> None:
        """The share and its items; the items' primary key refuses one taken already."""
        await self.session.execute(
            insert(order_shares).values(
                id=share.id,
                order_id=order_id,
                amount=format_amount(share.amount, currency),
                tip=format_amount(share.tip, currency),
                items=sorted(share.items),
                state=share.state.value,
                created_at=now,
                updated_at=now,
            )
        )
        if share.items:
            await self.session.execute(
                insert(order_share_items),
                [{"order_id": order_id, "item": i, "share_id": share.id} for i in share.items],
            )

    async def move(self, share: Share, to: ShareState, now: datetime) -> bool:
        """``share`` to ``to`` if it is still where it was read; a release frees its items."""
        moved = await self.changed_one(
            update(order_shares)
            .where(order_shares.c.id == share.id, order_shares.c.state == share.state.value)
            .values(state=to.value, updated_at=now)
        )
        if moved and to == ShareState.RELEASED:
            await self.session.execute(
                delete(order_share_items).where(order_share_items.c.share_id == share.id)
            )
        return moved

    async def reserving(self, order_id: str) -> bool:
        """Whether any share of the order holds or has paid money."""
        return await self._any(order_id, (ShareState.RELEASED,))

    async def under_way(self, order_id: str) -> bool:
        """Whether any share of the order holds money not yet cleared or given back."""
        return await self._any(order_id, (ShareState.RELEASED, ShareState.PAID))

    async def _any(self, order_id: str, but: tuple[ShareState, ...]) -> bool:
        result = await self.session.execute(
            select(order_shares.c.id)
            .where(
                order_shares.c.order_id == order_id,
                order_shares.c.state.not_in([state.value for state in but]),
            )
            .limit(1)
        )
        return result.first() is not None


async def shares_to_check(
    db: Database, updated_before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Shares whose hold has had no outcome since ``updated_before``, and every share being
    rolled back: the sweep's work list, oldest change first."""
    stale = (order_shares.c.state == ShareState.HOLDING.value) & (
        order_shares.c.updated_at < updated_before
    )
    rolling = order_shares.c.state == ShareState.ROLLING_BACK.value
    async with db.read() as connection:
        result = await connection.execute(
            select(order_shares.c.order_id, order_shares.c.id, order_shares.c.state)
            .where(stale | rolling)
            .order_by(order_shares.c.updated_at)
            .limit(limit)
        )
        return [{"order_id": r[0], "share_id": r[1], "state": r[2]} for r in result]
