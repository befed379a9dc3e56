"""iiko-integration's use cases: fetch what the rules need, apply them, call eda."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from qrpay.eda import schemas as eda
from qrpay.eda.client import EdaClient
from qrpay.iiko_integration import domain, refunds, split
from qrpay.iiko_integration.auth import ApiKeyAuth, authorize
from qrpay.iiko_integration.batching import StatusBatcher
from qrpay.iiko_integration.config import PushConfig
from qrpay.iiko_integration.follower import FeedFollower, FeedGauges
from qrpay.iiko_integration.memory import StatusMemory
from qrpay.iiko_integration.push import (
    Heartbeats,
    Key,
    Pushed,
    PushHub,
    Subscription,
    key_text,
    parse_key,
)
from qrpay.iiko_integration.rollout import Rollout
from qrpay.iiko_integration.schemas import (
    BillLine,
    BillLineType,
    CloseOrderRequest,
    CloseOrderResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    IikoCode,
    ListOrdersRequest,
    OrderPayments,
    OrderPaymentsRequest,
    PosStatus,
    RefundOrderRequest,
    RestaurantItem,
)
from qrpay.iiko_integration.stream_slots import StreamRefusal, StreamSlots
from qrpay.kernel.clock import Clock, SystemClock
from qrpay.kernel.errors import DependencyUnavailable, RateLimited
from qrpay.kernel.ratelimit import RateLimiter
from qrpay.kernel.reloading import RuntimeConfig
from qrpay.kernel.wakeup import Wakeups
from qrpay.payments_eda.client import RefundsClient
from qrpay.payments_eda.schemas import RefundView

if TYPE_CHECKING:
    from qrpay.runner.config import QrpayConfig

# Changes per answer of the POS long-poll; more are fetched with its cursor at once.
PUSH_PAGE = 100


class IikoService:
    def __init__(
        self,
        *,
        runtime: RuntimeConfig[QrpayConfig],
        eda_client: EdaClient,
        payments_client: RefundsClient | None = None,
        orders_created: Counter,
        push_subscribers: Gauge,
        stream_refusals: Counter | None = None,
        rollout: Rollout | None = None,
        clock: Clock | None = None,
        pos_limit: RateLimiter | None = None,
        feed_gauges: FeedGauges | None = None,
    ) -> None:
        self._runtime = runtime
        self._pos_limit = pos_limit
        self._eda = eda_client
        self._payments = payments_client
        self._orders_created = orders_created
        # The POS connected for push, by kind: each worker counts its own (the gauge sums).
        self._streams = push_subscribers.labels("stream")
        self._long_polls = push_subscribers.labels("long_poll")
        self._rollout = rollout or Rollout()
        self._statuses = StatusBatcher(self._fetch_statuses)
        self._clock = clock or SystemClock()
        self.memory = StatusMemory(runtime.config.feed.max_orders)
        self.hub = PushHub(lambda: runtime.config.push.buffer_size)
        # The streams' pings: on the event loop's time, not ``clock`` (tests freeze that).
        self.heartbeats = Heartbeats(lambda: runtime.config.push.heartbeat_ms / 1000)
        # Fresh only while its job runs (``app.wire``); until then every poll reads eda.
        self.follower = FeedFollower(
            eda_client,
            self.memory,
            self._clock,
            lambda: runtime.config.feed,
            self.hub,
            feed_gauges,
        )
        self.auth = ApiKeyAuth(lambda: runtime.secdist)
        self.stream_slots = StreamSlots(
            lambda: runtime.config.push.max_streams_per_key,
            lambda: runtime.config.push.max_streams,
        )
        self._stream_refusals = stream_refusals
        self._stream_keys: dict[Subscription, str] = {}

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
                f"eda did not answer in {deadline_ms} ms", code=IikoCode.EDA_UNAVAILABLE
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
    ) -> list[tuple[str, PosStatus]]:
        authorize(allowed, request.client_id)
        now = self._clock.monotonic()
        # Memory answers only while the feed is within max_lag_ms of eda; past that every
        # id is read from eda, so no answer is older than the bound.
        known: dict[str, domain.StatusOf | None] = {}
        if self.follower.is_fresh():
            known.update(self.memory.answers(request.orders, now))
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

    def push_config(self) -> PushConfig:
        return self._runtime.config.push

    async def pos_changes(
        self, allowed: frozenset[str], client_id: str, after: str | None, wait_ms: int
    ) -> tuple[list[tuple[str, PosStatus]], str]:
        """The restaurant's orders changed after the cursor ``after`` (absent: from now on),
        waiting up to ``wait_ms`` for one; and the cursor to resume from.

        While the follower is current a poll costs eda nothing: it is answered from the
        instance's buffer of followed changes (``push``), waiting for the follower to see a
        change of its restaurant. Only a cursor older than the buffer reads eda, once.
        Otherwise eda's own long-poll waits.
        """
        authorize(allowed, client_id)
        with self._long_polls.track_inprogress():
            return await self._pos_changes(client_id, after, wait_ms)

    async def _pos_changes(
        self, client_id: str, after: str | None, wait_ms: int
    ) -> tuple[list[tuple[str, PosStatus]], str]:
        hub = self.hub
        if hub.position is None or not self.follower.is_fresh():
            return await self._pos_changes_from_eda(client_id, after, wait_ms)
        scope = frozenset((client_id,))
        cursor = parse_key(after) if after is not None else hub.position
        ticket = hub.restaurants_changed.ticket(client_id)
        if not hub.covers(cursor):
            page = await self._eda.changes(
                key_text(cursor), limit=PUSH_PAGE, wait_ms=0, client_id=client_id
            )
            if page.changes or page.more:
                return self._pos_page(page, client_id)
        found = hub.since(cursor, scope, PUSH_PAGE)
        if not found and wait_ms > 0 and await Wakeups.wait(ticket, wait_ms / 1000):
            # Evicted past the cursor meanwhile: nothing is answered, the next poll reads eda.
            found = hub.since(cursor, scope, PUSH_PAGE) if hub.covers(cursor) else []
        statuses = [(pushed.order_id, pushed.status) for pushed in found]
        if len(found) == PUSH_PAGE:
            return statuses, found[-1].cursor
        # Every change of the restaurant up to the buffer's end was answered: resume there.
        return statuses, key_text(max(cursor, hub.position))

    async def _pos_changes_from_eda(
        self, client_id: str, after: str | None, wait_ms: int
    ) -> tuple[list[tuple[str, PosStatus]], str]:
        cursor = after if after is not None else await self._eda.feed_tail()
        page = await self._eda.changes(
            cursor, limit=PUSH_PAGE, wait_ms=wait_ms, client_id=client_id
        )
        return self._pos_page(page, client_id)

    def _pos_page(
        self, page: eda.ChangesPage, client_id: str
    ) -> tuple[list[tuple[str, PosStatus]], str]:
        for change in page.changes:
            self.memory.learn(change)
        statuses = [(c.order_id, domain.pos_status(c, client_id)) for c in page.changes]
        return statuses, page.cursor

    async def open_stream(
        self, allowed: frozenset[str], client_id: str | None, after: str | None, *, key: str
    ) -> tuple[Subscription, list[Pushed]]:
        """A WebSocket's subscription to the key's restaurants (or ``client_id`` only), and
        the changes after ``after`` it must send before the subscription's live ones;
        refused when ``key`` (the POS's API key) or the instance has all its streams open.

        The subscription is taken first, so nothing committed while catching up is lost;
        the stream skips what it has already sent (``Pushed.key``)."""
        if client_id is not None:
            authorize(allowed, client_id)
        refusal = self.stream_slots.take(key)
        if refusal is not None:
            if self._stream_refusals is not None:
                self._stream_refusals.labels(refusal).inc()
            if refusal is StreamRefusal.PER_KEY:
                raise RateLimited(
                    "this API key has all its streams open",
                    code=IikoCode.TOO_MANY_STREAMS,
                    retry_after=5,
                )
            raise DependencyUnavailable(
                "this instance has all its streams open", code=IikoCode.OVERLOADED
            )
        try:
            subscription, backlog = await self._subscribe(allowed, client_id, after)
        except BaseException:
            self.stream_slots.give_back(key)
            raise
        self._stream_keys[subscription] = key
        return subscription, backlog

    async def _subscribe(
        self, allowed: frozenset[str], client_id: str | None, after: str | None
    ) -> tuple[Subscription, list[Pushed]]:
        scope = frozenset((client_id,)) if client_id is not None else allowed
        cursor = parse_key(after) if after is not None else None
        position = self.hub.position
        if position is None:
            raise DependencyUnavailable(
                "not following eda's feed yet", code=IikoCode.EDA_UNAVAILABLE
            )
        floor = position if cursor is None else max(position, cursor)
        subscription = self.hub.subscribe(scope, self.push_config().queue_size, floor)
        try:
            if cursor is None or cursor >= position:
                backlog: list[Pushed] = []
            elif self.hub.covers(cursor):
                backlog = self.hub.since(cursor, scope, limit=self.push_config().buffer_size)
            else:
                backlog = await self._catch_up(cursor, scope)
        except BaseException:
            self.hub.unsubscribe(subscription)
            raise
        self._streams.inc()
        return subscription, backlog

    def close_stream(self, subscription: Subscription) -> None:
        """The end of a stream ``open_stream`` opened, however it ended."""
        self.stream_slots.give_back(self._stream_keys.pop(subscription))
        self.hub.unsubscribe(subscription)
        self._streams.dec()

    async def _catch_up(self, cursor: Key, scope: frozenset[str]) -> list[Pushed]:
        """The changes of ``scope`` after ``cursor`` from eda, in feed order: one restaurant's
        part of the feed, or the whole feed filtered here (one order for all of them)."""
        only = next(iter(scope)) if len(scope) == 1 else None
        found: list[Pushed] = []
        text = key_text(cursor)
        while True:
            page = await self._eda.changes(text, limit=500, wait_ms=0, client_id=only)
            found += [Pushed.of(c) for c in page.changes if c.client_id in scope]
            text = page.cursor
            # Held back by an older transaction: the follower brings those live.
            if not page.more or not page.changes:
                return found

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
                f"eda did not answer in {deadline_ms} ms", code=IikoCode.EDA_UNAVAILABLE
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

    async def refund_order(
        self, allowed: frozenset[str], request: RefundOrderRequest
    ) -> RefundView:
        if self._payments is None:  # pragma: no cover - wired in app.py
            raise RuntimeError("iiko-integration was built without payments-eda")
        return await refunds.refund_order(self._eda, self._payments, allowed, request)

    async def order_payments(
        self, allowed: frozenset[str], request: OrderPaymentsRequest
    ) -> list[OrderPayments]:
        return await split.order_payments(self._eda, allowed, request)
