"""The YAML config and the secdist file (SPEC section 7), validated.

Both files are read at start-up and re-read when they change
(``kernel.reloading``). Every service reads the same two files and uses the
sections it needs; unknown keys are rejected so a typo cannot silently switch
something off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from qrpay.kernel.errors import QrpayError
from qrpay.kernel.money import decimal_places, is_known_currency, minor_units
from qrpay.kernel.tickets import SUPPORT_IDENTITY, TOOLS_IDENTITY, decode_key


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Percent = Annotated[Decimal, Field(ge=0, le=100)]


class Restaurant(Strict):
    client_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=256)
    zone: str = Field(min_length=1, max_length=64)
    cashback_rate: Percent
    cashback_cap: Decimal | None = Field(default=None, ge=0)
    # The tip percentages the payer page offers on a share (any amount may be typed too).
    tip_percents: tuple[Annotated[int, Field(ge=1, le=100)], ...] = (5, 10, 15)
    currencies: tuple[str, ...] = ("RUB",)
    enabled: bool = True
    language: str = "ru"
    address: str | None = None

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if not is_known_currency(c)]
        if unknown:
            raise ValueError(f"unknown currencies: {unknown}")
        if not value:
            raise ValueError("a restaurant accepts at least one currency")
        return value

    @property
    def rate_text(self) -> str:
        from qrpay.kernel.money import format_plain

        return f"{format_plain(self.cashback_rate)}%"


class DependencyConfig(Strict):
    """How one service reaches another."""

    base_url: str
    timeout_ms: int = Field(default=1000, ge=1, le=60_000)
    # Extra tries for idempotent calls only; each try must still fit the deadline.
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff_ms: int = Field(default=20, ge=0, le=10_000)
    # Bulkhead: callers in one process waiting on this service at once; one more is
    # answered 503 at once. Below http.max_in_flight and the 200 pooled connections, so a
    # slow dependency cannot take every request slot or connection of its callers.
    max_in_flight: int = Field(default=128, ge=1, le=100_000)


V = TypeVar("V")


def only_known_services(value: dict[str, V], what: str, known: Collection[str]) -> dict[str, V]:
    """``value`` if it names ``known`` services only, else ValueError naming the others."""
    unknown = set(value) - set(known)
    if unknown:
        raise ValueError(f"{what} for unknown services: {sorted(unknown)}")
    return value


class DatabasePoolsConfig(Strict):
    """PostgreSQL connections one process keeps at most; read at start (a reload does not
    resize an open pool). A service with a database opens two pools of ``size_for(service)``
    (SQLAlchemy's and the asyncpg one of the hot reads), every process one of ``queue`` to
    the queue database. The budget for N instances: deploy/README.md."""

    # The services a size may be given for: the product's (the runner's registry).
    service_names: ClassVar[tuple[str, ...]] = ()

    default: int = Field(default=20, ge=1, le=1000)
    services: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=dict)
    queue: int = Field(default=4, ge=1, le=1000)

    @field_validator("services")
    @classmethod
    def _known_pool_services(cls, value: dict[str, int]) -> dict[str, int]:
        return only_known_services(value, "pool sizes", cls.service_names)

    def size_for(self, service: str) -> int:
        return self.services.get(service, self.default)


def default_dependencies(ports: Mapping[str, int]) -> dict[str, DependencyConfig]:
    return {
        name: DependencyConfig(base_url=f"http://127.0.0.1:{port}") for name, port in ports.items()
    }


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


class PushConfig(Strict):
    """iiko-integration's push to the POS (``iiko_integration.push``)."""

    # A ping message on every quiet WebSocket this often; the POS answers each with a pong.
    heartbeat_ms: int = Field(default=15_000, ge=10, le=600_000)
    # A WebSocket whose POS sent nothing (no pong) for this long is closed (code 4408).
    client_timeout_ms: int = Field(default=45_000, ge=10, le=3_600_000)
    # Changes queued for one connection; a POS this far behind is closed (code 1013) and
    # resumes from its cursor.
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    # Changes the instance keeps after following them, so a POS that resumes from a recent
    # cursor is answered from memory; an older cursor is caught up from eda.
    buffer_size: int = Field(default=50_000, ge=1, le=10_000_000)
    # WebSocket streams one instance keeps open per POS API key, and in all; one more is
    # refused at the handshake (429 too_many_streams, 503 overloaded). A key serves every
    # terminal of its restaurants; `make bench-push` raises both for its 10,000.
    max_streams_per_key: int = Field(default=200, ge=1, le=1_000_000)
    max_streams: int = Field(default=20_000, ge=1, le=1_000_000)


class DeeplinkConfig(Strict):
    base: str = "https://yandex-go.ru/go-pay/orders"


class CashbackRules(Strict):
    # Decimal places the cashback amount is rounded down to (0 = whole units).
    rounding_places: int = Field(default=0, ge=0, le=2)
    default_cap: Decimal | None = Field(default=None, ge=0)


class PaymentsConfig(Strict):
    polling_delay_seconds: Decimal = Field(default=Decimal("1"), gt=0, le=60)
    # Tries of one transaction callback before it is kept as failed. Retries wait 1, 2, 4, 8,
    # then 10 s each (kernel/queue.py): 360 tries ride out about an hour of outage.
    callback_max_attempts: int = Field(default=360, ge=1, le=10_000)
    # Tries of a cashback accrual before it is recorded as a problem (the payment stands);
    # 60 tries are about ten minutes.
    cashback_max_attempts: int = Field(default=60, ge=1, le=10_000)
    # When the durable check that a started payment really got its hold runs.
    hold_watchdog_seconds: float = Field(default=30, gt=0)
    # The whole budget of one pay request in payments-eda, its downstream calls included
    # (each is bounded by what is left of it): a caller (api-proxy) waits at least this long
    # before it reads the outcome as unknown.
    pay_budget_ms: int = Field(default=6000, ge=100, le=60_000)


class GatewayConfig(Strict):
    kind: str = Field(default="sandbox", pattern=r"^sandbox$")
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    # How long one gateway call may take before its outcome counts as unknown.
    call_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Sandbox faults: this share of calls is carried out but its answer is lost (the
    # caller sees no answer; a lookup by the idempotency key finds the result).
    lost_answer_rate: float = Field(default=0.0, ge=0, le=1)
    # An operation without a definite answer is retried with this capped backoff, for
    # ever; past ``unknown_alert_attempts`` tries it is counted as stuck (an alert).
    retry_cap_seconds: float = Field(default=30.0, gt=0, le=3600)
    unknown_alert_attempts: int = Field(default=10, ge=1, le=10_000)
    # A clear the gateway refuses is tried this many times in all, each under a new key and
    # after the same capped backoff (2, 4, 8, 16 s by default), before it is failed.
    clear_attempts: int = Field(default=5, ge=1, le=100)


class TransactionsConfig(Strict):
    # A hold never cleared is released after this long.
    hold_ttl_seconds: float = Field(default=3 * 24 * 3600, gt=0)
    gateway: GatewayConfig = GatewayConfig()
    # How often the relay looks for unprocessed operations and undelivered callbacks.
    relay_interval_seconds: float = Field(default=0.5, gt=0)


class RetentionConfig(Strict):
    """What is removed, and when (docs/data-lifecycle.md). Money records are never removed:
    invoices, operations, accruals, orders' amounts and statuses, shares."""

    # How often the removal runs, in every process that runs it (idempotent on several).
    interval_seconds: float = Field(default=3600, gt=0, le=7 * 24 * 3600)
    # Queue jobs cancelled or aborted this long ago are deleted (succeeded ones are deleted
    # as they finish; procrastinate's remove_old_jobs).
    finished_jobs_hours: float = Field(default=72, gt=0)
    # Failed jobs are kept while a human may still retry them (QrpayQueueFailedTasks pages
    # all that time), then deleted.
    failed_jobs_days: float = Field(default=30, gt=0)
    # A closed order's bill lines (names and amounts of its items) are collapsed into one
    # line of its total this long after it closed.
    closed_orders_days: float = Field(default=90, gt=0)


class CashbackServiceConfig(Strict):
    # The switch that makes accruals fail, for tests of the failure paths.
    fail_accruals: bool = False


class DemoCard(Strict):
    id: str
    token: str
    system: str = "visa"
    last4: str = Field(pattern=r"^[0-9]{4}$")
    expiry_month: int = Field(ge=1, le=12)
    expiry_year: int = Field(ge=2000, le=2100)
    label: str = ""


class DemoConfig(Strict):
    """What `qrpay up` seeds: a guest and their saved cards."""

    user_id: str = "demo-user"
    cards: tuple[DemoCard, ...] = ()


class SessionsConfig(Strict):
    """api-proxy's session cookies."""

    # The demo users' sign-in page (/login); kernel.production refuses it in production.
    development_sign_in: bool = False
    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    # Revocation: a user's sessions issued before this moment are refused (a stolen
    # cookie, a lost phone). Every session at once: rotate the session secret instead.
    revoked_before: dict[str, AwareDatetime] = Field(default_factory=dict)


Networks = tuple[IPvAnyNetwork, ...]
LOOPBACK: Networks = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))


class ServiceTicketsConfig(Strict):
    """Who calls whom (kernel.callers): the per-route allowlists are in the code."""

    # Routes that declare the tools' identity (kernel.tickets.TOOLS_IDENTITY: the guest
    # CLI, the benchmarks, `qrpay up`'s demo cards) accept it only when this is on;
    # kernel.production refuses it in production.
    tools_allowed: bool = False


class HttpConfig(Strict):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Requests one instance runs at once; more are answered 503 overloaded at once.
    max_in_flight: int = Field(default=256, ge=1, le=100_000)
    # Peers (addresses or CIDRs) whose X-Forwarded-For/-Proto/-Host and Forwarded headers are
    # believed: the load balancer or nginx in front. Empty: nobody's, the peer is the client.
    trusted_proxies: Networks = ()
    # Clients (after trusted forwarding) that may read a public service's /metrics and API
    # docs; anyone else gets 404 there (kernel.edge).
    internal_networks: Networks = LOOPBACK
    # FastAPI's /docs, /redoc and /openapi.json; a production config turns them off.
    docs: bool = True
    # Strict-Transport-Security on answers to https requests; 0 sends none.
    hsts_max_age_seconds: int = Field(default=365 * 24 * 3600, ge=0, le=2 * 365 * 24 * 3600)


class RateLimit(Strict):
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class LimitName(StrEnum):
    POS_KEY = "pos_key"
    SIGN_IN = "sign_in"
    PAY = "pay"
    CLIENT_ADDRESS = "client_address"


class LimitsConfig(Strict):
    """Rate limits, each counted in every instance on its own (kernel.ratelimit)."""

    enabled: bool = True
    # iiko-integration's POS routes, per API key.
    pos_key: RateLimit = RateLimit(per_second=50, burst=200)
    # api-proxy: sign-ins per user, pay attempts per user, every request per client address.
    sign_in: RateLimit = RateLimit(per_second=0.2, burst=10)
    pay: RateLimit = RateLimit(per_second=0.5, burst=10)
    client_address: RateLimit = RateLimit(per_second=50, burst=200)
    # Buckets kept per limit and instance; idle (full) ones are dropped first, then the
    # least recently used.
    max_keys: int = Field(default=100_000, ge=1, le=10_000_000)

    def rule(self, name: LimitName) -> RateLimit | None:
        """The limit in force for ``name``; None when limits are off."""
        return getattr(self, name.value) if self.enabled else None


class Experiments(Strict):
    """Rollout flags in flagd's flag-definition format, evaluated by flagd's core."""

    flags: dict[str, Any] = Field(default_factory=dict)
    availability_flag: str = "go_pay_enabled"

    @model_validator(mode="after")
    def _flagd_accepts(self) -> Experiments:
        from openfeature.contrib.tools.flagd.core import FlagdCore

        try:
            FlagdCore().set_flags_and_get_changed_keys(json.dumps({"flags": self.flags}))
        except Exception as exc:
            raise ValueError(f"flagd rejects the flags: {exc!r}") from exc
        return self


class KernelConfig(Strict):
    """The config file's model. The runner composes the product's (``runner.config``): it
    gives the services' names and default ports, and adds the services' sections."""

    # Each service and where it listens by default: the names ``services`` and
    # ``database_pools.services`` may hold, and the default of ``services``.
    service_ports: ClassVar[Mapping[str, int]] = {}

    restaurants: tuple[Restaurant, ...] = ()
    orders: OrdersConfig = OrdersConfig()
    feed: FeedConfig = FeedConfig()
    push: PushConfig = PushConfig()
    deeplink: DeeplinkConfig = DeeplinkConfig()
    bill_text_templates: dict[str, str] = Field(
        default_factory=lambda: {
            "ru": "Оплати через yandex-go и получи кэшбэк {rate}!",
            "en": "Pay with yandex-go and get {rate} cashback!",
        }
    )
    cashback: CashbackRules = CashbackRules()
    payments: PaymentsConfig = PaymentsConfig()
    transactions: TransactionsConfig = TransactionsConfig()
    cashback_service: CashbackServiceConfig = CashbackServiceConfig()
    retention: RetentionConfig = RetentionConfig()
    demo: DemoConfig = DemoConfig()
    sessions: SessionsConfig = SessionsConfig()
    http: HttpConfig = HttpConfig()
    limits: LimitsConfig = LimitsConfig()
    service_tickets: ServiceTicketsConfig = ServiceTicketsConfig()
    experiments: Experiments = Experiments()
    # Validated when defaulted too: the validator adds every service's default.
    services: dict[str, DependencyConfig] = Field(default_factory=dict, validate_default=True)
    database_pools: DatabasePoolsConfig = DatabasePoolsConfig()
    config_reload_interval_seconds: float = Field(default=1.0, gt=0)

    @field_validator("restaurants")
    @classmethod
    def _unique_restaurants(cls, value: tuple[Restaurant, ...]) -> tuple[Restaurant, ...]:
        ids = [r.client_id for r in value]
        if len(ids) != len(set(ids)):
            raise ValueError("restaurant client_ids must be unique")
        return value

    @model_validator(mode="after")
    def _cashback_representable(self) -> KernelConfig:
        """Cashback is paid in a restaurant's currency: it is rounded to no finer a place than
        the coarsest minor unit any restaurant accepts (JPY has none), and every cap is a
        whole number of those places (else a capped cashback would be rounded below its cap)."""
        places = self.cashback.rounding_places
        for restaurant in self.restaurants:
            for currency in restaurant.currencies:
                if places > minor_units(currency):
                    raise ValueError(
                        f"cashback.rounding_places {places} is finer than {currency}'s"
                        f" {minor_units(currency)} minor-unit places (restaurant"
                        f" {restaurant.client_id!r} accepts {currency})"
                    )
        caps = [("cashback.default_cap", self.cashback.default_cap)]
        caps += [(f"{r.client_id!r} cashback_cap", r.cashback_cap) for r in self.restaurants]
        for name, cap in caps:
            if cap is not None and decimal_places(cap) > places:
                raise ValueError(
                    f"{name} {cap} has more decimal places than cashback.rounding_places {places}"
                )
        return self

    @field_validator("bill_text_templates")
    @classmethod
    def _templates_have_rate(cls, value: dict[str, str]) -> dict[str, str]:
        for language, template in value.items():
            if "{rate}" not in template:
                raise ValueError(f"template {language!r} must contain {{rate}}")
            try:
                template.format(rate="30%")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {language!r} is not valid: {exc}") from exc
        if "ru" not in value:
            raise ValueError("a 'ru' template is required")
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: dict[str, DependencyConfig]) -> dict[str, DependencyConfig]:
        only_known_services(value, "dependencies", cls.service_ports)
        merged = default_dependencies(cls.service_ports)
        merged.update(value)
        return merged

    def restaurant(self, client_id: str) -> Restaurant | None:
        return self.restaurants_by_id.get(client_id)

    @cached_property
    def restaurants_by_id(self) -> dict[str, Restaurant]:
        return {r.client_id: r for r in self.restaurants}

    def dependency(self, service: str) -> DependencyConfig:
        return self.services[service]


# Shortest accepted secrets. An API key is typed by hand into a POS, so 16; the session
# secret signs cookies that name any user, so 32 (256 bits of hex).
MIN_API_KEY = 16
MIN_HMAC_KEY = 16
MIN_SESSION_SECRET = 32


class ConfigCode(StrEnum):
    SECDIST_INVALID = "secdist_invalid"
    SECDIST_NOT_SET = "secdist_not_set"
    DEVELOPMENT_SECRETS = "development_secrets"
    DEVELOPMENT_SIGN_IN = "development_sign_in"
    TOOL_TICKETS = "tool_tickets"
    OTHER_SERVICES_KEYS = "other_services_keys"
    NO_TICKET_KEY = "no_ticket_key"
    SANDBOX_GATEWAY = "sandbox_gateway"
    FAULT_SWITCH = "fault_switch"
    INSECURE_DEEPLINK = "insecure_deeplink"


class ConfigRefused(QrpayError, default_code=ConfigCode.SECDIST_INVALID):
    """A config or secdist a process must not run with; its message never quotes a value."""


class ApiKey(Strict):
    key: SecretStr = Field(min_length=MIN_API_KEY)
    name: str = Field(default="pos", min_length=1, max_length=64)
    client_ids: frozenset[str] = Field(min_length=1)


def _valid_secret_key(key: SecretStr) -> SecretStr:
    decode_key(key.get_secret_value())
    return key


def caller_names(services: Iterable[str]) -> tuple[str, ...]:
    """Who a route may name as its caller (``kernel.callers.allow``): the services and the
    support tools."""
    return (*services, SUPPORT_IDENTITY)


def ticket_identities(services: Iterable[str]) -> tuple[str, ...]:
    """Who may hold ticket keys: the callers and the tools' identity."""
    return (*caller_names(services), TOOLS_IDENTITY)


def _valid_key(text: str) -> str:
    decode_key(text)
    return text


TicketKey = Annotated[str, AfterValidator(_valid_key)]


class TicketKeys(Strict):
    """Service ticket keys (kernel.tickets), Ed25519, base64url of 32 bytes.

    ``private``: signing keys by service, the first signs; a production secdist holds
    only its own service's (kernel.production). ``public``: verifying keys by calling
    service, any of them verifies (rotation: the new one is added before its service
    signs with it, the old one dropped when its tickets have expired).
    """

    # Who may hold keys (``ticket_identities``): given by the runner.
    identities: ClassVar[tuple[str, ...]] = ()

    private: dict[str, tuple[Annotated[SecretStr, AfterValidator(_valid_secret_key)], ...]] = Field(
        default_factory=dict
    )
    public: dict[str, tuple[TicketKey, ...]] = Field(default_factory=dict)

    def signing(self, identity: str) -> tuple[SecretStr, ...]:
        """``identity``'s private keys, the signing one first; () if this secdist has none."""
        return self.private.get(identity, ())

    @field_validator("private", "public")
    @classmethod
    def _known_identities(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - set(cls.identities)
        if unknown:
            raise ValueError(f"ticket keys of unknown services: {sorted(unknown)}")
        if any(not keys for keys in value.values()):
            raise ValueError("a service listed with no key")
        return value


class Secdist(Strict):
    """The secdist file's model; the runner's (``runner.config``) gives the services' names."""

    # The services ``databases`` may name.
    service_names: ClassVar[tuple[str, ...]] = ()

    api_keys: tuple[ApiKey, ...] = ()
    # The first key signs; all of them verify (rotation). Required: without one
    # iiko-integration would create an order and then fail to sign its link.
    hmac_keys: tuple[Annotated[SecretStr, Field(min_length=MIN_HMAC_KEY)], ...] = Field(
        min_length=1
    )
    databases: dict[str, str] = Field(default_factory=dict)
    queue_database: str | None = None
    # Session cookies: the first secret signs, all of them verify (rotation). None: no
    # sign-in at all.
    session_secrets: (
        tuple[Annotated[SecretStr, Field(min_length=MIN_SESSION_SECRET)], ...] | None
    ) = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_session_secret(cls, data: Any) -> Any:
        # Secdist files written before rotation have one ``session_secret``; it reads as a
        # list of one. Both at once would leave unclear which signs.
        if isinstance(data, dict) and "session_secret" in data:
            data = dict(data)
            single = data.pop("session_secret")
            if "session_secrets" in data:
                raise ValueError("give session_secrets or session_secret, not both")
            data["session_secrets"] = None if single is None else [single]
        return data

    @field_validator("databases")
    @classmethod
    def _known_databases(cls, value: dict[str, str]) -> dict[str, str]:
        return only_known_services(value, "databases", cls.service_names)

    # Service tickets (kernel.tickets): this service's signing keys and its callers'
    # public keys. Required: without them no service could call another.
    ticket_keys: TicketKeys

    def secret_values(self) -> dict[str, list[str]]:
        """Every secret by the field holding it, to compare with the development values.
        The public ticket keys too: a development public key verifies tickets anyone can
        sign with the development private key."""
        return {
            "api_keys": [key.key.get_secret_value() for key in self.api_keys],
            "hmac_keys": [key.get_secret_value() for key in self.hmac_keys],
            "session_secrets": [s.get_secret_value() for s in self.session_secrets or ()],
            "ticket_keys.private": [
                key.get_secret_value() for keys in self.ticket_keys.private.values() for key in keys
            ],
            "ticket_keys.public": [
                key for keys in self.ticket_keys.public.values() for key in keys
            ],
        }


# Loc parts an error may name: field and service names, and a mistyped field name
# (lowercase letters and underscores: a generated secret has digits or capitals, so
# a secret pasted where a key belongs is shown as <key>).
_NAMEABLE = set(Secdist.model_fields) | set(ApiKey.model_fields) | set(TicketKeys.model_fields)
_FIELD_LIKE = re.compile(r"[a-z_]{1,32}")


def _safe_loc(loc: tuple[int | str, ...], identities: Collection[str]) -> str:
    parts = [
        str(part)
        if isinstance(part, int)
        or part in _NAMEABLE
        or part in identities
        or _FIELD_LIKE.fullmatch(part)
        else "<key>"
        for part in loc
    ]
    return ".".join(parts) or "secdist"


def secdist_refused(exc: ValidationError, identities: Collection[str]) -> ConfigRefused:
    """The error as field names and error types only: pydantic's text quotes the input.
    ``identities``: the names of services and tools, shown as they are."""
    problems = [
        f"{_safe_loc(error['loc'], identities)}: {error['type']}"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ConfigRefused(
        f"secdist is not valid: {'; '.join(problems)}",
        code=ConfigCode.SECDIST_INVALID,
        details={"errors": problems},
    )


def load_yaml(path: Path) -> Any:
    with path.open("rb") as handle:
        data = yaml.safe_load(handle)
    return {} if data is None else data


C = TypeVar("C", bound=KernelConfig)
S = TypeVar("S", bound=Secdist)


def parse_config_as(model: type[C], data: Any) -> C:
    return model.model_validate(data)


def parse_secdist_as(model: type[S], data: Any) -> S:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # ``from None``: a chained traceback would print pydantic's text, input included.
        raise secdist_refused(exc, ticket_identities(model.service_names)) from None


def load_secdist_as(model: type[S], path: Path) -> S:
    try:
        data = load_yaml(path)
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigRefused(
            f"secdist {path} is not valid YAML{where}", code=ConfigCode.SECDIST_INVALID
        ) from None
    return parse_secdist_as(model, data)
