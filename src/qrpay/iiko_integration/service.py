"""iiko-integration's use cases: fetch what the rules need, apply them, call eda."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter

from qrpay.eda import schemas as eda
from qrpay.eda.client import EdaClient
from qrpay.iiko_integration import domain, split
from qrpay.iiko_integration.auth import ApiKeyAuth, authorize
from qrpay.iiko_integration.batching import StatusBatcher
from qrpay.iiko_integration.follower import FeedFollower
from qrpay.iiko_integration.memory import StatusMemory
from qrpay.iiko_integration.rollout import Rollout
from qrpay.iiko_integration.schemas import (
    BillLine,
    BillLineType,
    CloseOrderRequest,
    CloseOrderResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    ListOrdersRequest,
    OrderPayments,
    RestaurantItem,
)
from qrpay.kernel.clock import Clock, SystemClock
from qrpay.kernel.errors import DependencyUnavailable
from qrpay.kernel.ratelimit import RateLimiter
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.wakeup import Wakeups

# Changes per answer of the POS long-poll; more are fetched with its cursor at once.
PUSH_PAGE = 100


class IikoService:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig,
        eda_client: EdaClient,
        orders_created: Counter,
        rollout: Rollout | None = None,
        clock: Clock | None = None,
        pos_limit: RateLimiter | None = None,
    ) -> None:
        self._runtime = runtime
        self._pos_limit = pos_limit
        self._eda = eda_client
        self._orders_created = orders_created
        self._rollout = rollout or Rollout()
        self._statuses = StatusBatcher(self._fetch_statuses)
        self._clock = clock or SystemClock()
        self.memory = StatusMemory(runtime.config.feed.max_orders)
        # Fresh only while its job runs (``app.wire``); until then every poll reads eda.
        self.follower = FeedFollower(
            eda_client, self.memory, self._clock, lambda: runtime.config.feed
        )
        self.auth = ApiKeyAuth(lambda: runtime.secdist)

    def authenticate(self, api_key: str | None) -> frozenset[str]:
        allowed = self.auth.authenticate(api_key)
        if self._pos_limit is not None and api_key:
            # Keyed by the key itself, only once it is known to be one of secdist's: the
            # buckets are as many as the keys, and the limiter never logs its keys.
            self._pos_limit.check(api_key)
        return allowed

    async def create_order(
        self, allowed: frozenset[str], request: CreateOrderRequest
    ) -> CreateOrderResponse:
        config = self._runtime.config
        # The key's scope is checked before the restaurant so a key cannot probe other restaurants.
        authorize(allowed, request.client_id)
        restaurant = domain.order_restaurant(config, request.client_id)
        domain.check_bill(restaurant, request.bill, config.orders.max_amount)

        deadline_ms = config.orders.create_deadline_ms
        eda_request = eda.CreateOrderRequest(
            client_id=request.client_id,
            internal_order_id=request.internal_order_id,
            bill=request.bill,
        )
        try:
            # The client already budgets its tries; this also caps anything it does not time.
            async with asyncio.timeout(deadline_ms / 1000):
                created = await self._eda.create_order(eda_request, deadline_ms=deadline_ms)
        except TimeoutError:
            raise DependencyUnavailable(
                f"eda did not answer in {deadline_ms} ms", code="eda_unavailable"
            ) from None
        if created.outcome is eda.CreateOutcome.CREATED:
            self._orders_created.labels(request.client_id).inc()

        order_id = created.order.order_id
        link = domain.qr_link(
            config.deeplink.base, self._runtime.secdist.hmac_keys, order_id, request.client_id
        )
        return CreateOrderResponse(
            order_id=order_id,
            bill_lines=[
                BillLine(
                    type=BillLineType.TEXT,
                    value=domain.bill_text(config.bill_text_templates, restaurant),
                ),
                BillLine(type=BillLineType.QR_CODE, value=link),
            ],
        )

    async def list_orders(
        self, allowed: frozenset[str], request: ListOrdersRequest
    ) -> list[tuple[str, domain.PosStatus]]:
        authorize(allowed, request.client_id)
        now = self._clock.monotonic()
        # Memory answers only while the feed is within max_lag_ms of eda; past that every
        # id is read from eda, so no answer is older than the bound.
        known = self.memory.answers(request.orders, now) if self.follower.is_fresh() else {}
        unknown = [order_id for order_id in dict.fromkeys(request.orders) if order_id not in known]
        if unknown:
            found = await self._read_statuses(unknown)
            until = now + self._runtime.config.feed.not_found_ttl_ms / 1000
            self.memory.learn_read(unknown, found.values(), until)
            for order_id in unknown:
                # Memory may hold a newer view than this read (the feed got there first).
                known[order_id] = self.memory.view(order_id) or found.get(order_id)
        by_id = {order_id: view for order_id, view in known.items() if view is not None}
        return domain.pos_statuses(request.orders, by_id, request.client_id)

    async def pos_changes(
        self, allowed: frozenset[str], client_id: str, after: str | None, wait_ms: int
    ) -> tuple[list[tuple[str, domain.PosStatus]], str]:
        """The restaurant's orders changed after the cursor ``after`` (absent: from now on),
        waiting up to ``wait_ms`` for one; and the cursor to resume from.

        While the follower is current, a waiting request costs eda nothing: it waits for the
        follower to see a change of its restaurant and then reads eda once. Otherwise eda's
        own long-poll waits.
        """
        authorize(allowed, client_id)
        cursor = after if after is not None else await self._eda.feed_tail()
        ticket = self.follower.restaurants_changed.ticket(client_id)
        page = await self._eda.changes(cursor, limit=PUSH_PAGE, wait_ms=0, client_id=client_id)
        if not page.changes and not page.more and wait_ms > 0:
            if self.follower.is_fresh():
                if await Wakeups.wait(ticket, wait_ms / 1000):
                    page = await self._eda.changes(
                        cursor, limit=PUSH_PAGE, wait_ms=0, client_id=client_id
                    )
            else:
                page = await self._eda.changes(
                    cursor, limit=PUSH_PAGE, wait_ms=wait_ms, client_id=client_id
                )
        for change in page.changes:
            self.memory.learn(change)
        statuses = [(c.order_id, domain.pos_status(c, client_id)) for c in page.changes]
        return statuses, page.cursor

    async def _read_statuses(self, order_ids: list[str]) -> dict[str, eda.OrderStatusView]:
        deadline_ms = self._runtime.config.orders.status_deadline_ms
        try:
            # Each poll waiting for eda holds one of eda's bulkhead slots, so a slow eda
            # fills that share of the instance and no more; the rest are refused at once.
            with self._eda.reserve("statuses"):
                # Concurrent polls share eda calls; the answer is spread back over each request.
                return await self._statuses.statuses(order_ids, timeout=deadline_ms / 1000)
        except TimeoutError:
            raise DependencyUnavailable(
                f"eda did not answer in {deadline_ms} ms", code="eda_unavailable"
            ) from None

    async def _fetch_statuses(self, order_ids: list[str]) -> list[eda.OrderStatusView]:
        # One call for many waiting polls: they hold the bulkhead slots, it takes none.
        with self._eda.bulkhead.covered():
            return await self._eda.statuses(order_ids)

    def is_available(
        self, *, nearest_zone: str | None, uuid: str | None, phone_id: str | None
    ) -> bool:
        if not (nearest_zone and uuid and phone_id):
            return False
        return self._rollout.is_available(
            self._runtime.config.experiments,
            uuid=uuid,
            phone_id=phone_id,
            nearest_zone=nearest_zone,
        )

    def restaurants(
        self, *, nearest_zone: str | None, uuid: str | None, phone_id: str | None
    ) -> list[RestaurantItem]:
        if not self.is_available(nearest_zone=nearest_zone, uuid=uuid, phone_id=phone_id):
            return []
        return [
            RestaurantItem(id=r.client_id, name=r.name, cashback=r.rate_text, address=r.address)
            for r in domain.zone_restaurants(self._runtime.config, nearest_zone or "")
        ]

    # --- a split bill (issue 12): see ``iiko_integration.split`` ---------------------------

    async def close_order(
        self, allowed: frozenset[str], request: CloseOrderRequest
    ) -> CloseOrderResponse:
        return await split.close_order(self._eda, allowed, request)

    async def order_payments(
        self, allowed: frozenset[str], request: ListOrdersRequest
    ) -> list[OrderPayments]:
        return await split.order_payments(self._eda, allowed, request)
