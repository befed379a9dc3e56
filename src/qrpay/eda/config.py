"""eda's config sections: the orders and their change feed."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from qrpay.kernel.config import Strict


class OrdersConfig(Strict):
    max_amount: Decimal = Field(default=Decimal("10000000"), gt=0)
    ttl_seconds: int = Field(default=24 * 3600, ge=1)
    ttl_check_interval_seconds: float = Field(default=60, gt=0)
    # iiko-integration answers POST /orders within this, or 503.
    create_deadline_ms: int = Field(default=2000, ge=10, le=60_000)
    # iiko-integration answers POST /orders/list within this, or 503: the wait for a shared
    # status read included. Each eda call is also bounded by services.eda.timeout_ms.
    status_deadline_ms: int = Field(default=1000, ge=10, le=60_000)


class FeedConfig(Strict):
    """eda's change feed and iiko-integration's follower of it (the statuses in memory)."""

    # A follower whose last complete read of the feed started longer ago than this reads
    # the statuses from eda instead: no poll is answered from older data.
    max_lag_ms: int = Field(default=1000, ge=10, le=600_000)
    # How long the follower's long-poll waits in eda for a change; under max_lag_ms, so an
    # idle feed still proves the follower current.
    wait_ms: int = Field(default=400, ge=0, le=60_000)
    page_size: int = Field(default=500, ge=1, le=5000)
    # While a long-poll waits, eda looks at the table this often: for a notification lost
    # (sent while its listener reconnected) and for a horizon held back by a transaction
    # that sends none (the horizon is the whole cluster's: other services' transactions
    # hold it back briefly all the time under load). Writes of orders wake it at once: its
    # own in-process, any eda instance's by NOTIFY on PostgreSQL.
    recheck_ms: int = Field(default=50, ge=1, le=10_000)
    # Orders kept in memory per iiko-integration instance; the least recently changed or
    # asked for are dropped first (and read from eda again when asked for).
    max_orders: int = Field(default=200_000, ge=1, le=10_000_000)
    # An id eda did not know is answered NOT_FOUND from memory for this long.
    not_found_ttl_ms: int = Field(default=2000, ge=0, le=600_000)
    # Between tries of a follower whose feed reads fail.
    retry_ms: int = Field(default=500, ge=1, le=60_000)
