"""The TTL job: unpaid orders older than their TTL are closed.

Safe to run on every instance at once: it is one conditional UPDATE, so each
order is canceled once and an order whose payment started is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from qrpay.eda.config import OrdersConfig
from qrpay.eda.service import OrderService

log = structlog.get_logger("qrpay.eda.jobs")


async def close_expired_orders(service: OrderService, ttl_seconds: int) -> int:
    """Cancel the expired orders now; returns how many were canceled."""
    closed = await service.close_expired(ttl_seconds)
    if closed:
        log.info("orders_canceled_by_ttl", count=closed)
    return closed


async def refresh_open_orders(service: OrderService) -> None:
    service.metrics.open_orders.set(await service.count_open())


async def run_ttl_loop(service: OrderService, config: Callable[[], OrdersConfig]) -> None:
    # The config is read on every round so a reload changes the TTL and the interval.
    while True:
        try:
            await close_expired_orders(service, config().ttl_seconds)
            await refresh_open_orders(service)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A database that is down for a while must not stop the job for good.
            log.warning("ttl_job_failed", error=repr(exc))
        await asyncio.sleep(config().ttl_check_interval_seconds)
