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
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import (
    AfterValidator,
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
from qrpay.kernel.tickets import SUPPORT_IDENTITY, TOOLS_IDENTITY, decode_key


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    # The POS routes, per API key.
    pos_key: RateLimit = RateLimit(per_second=50, burst=200)
    # The public edge: sign-ins per user, pay attempts per user, every request per client
    # address.
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
    """The kernel's sections of the config file. The runner composes the product's model
    (``runner.config``): it gives the services' names and default ports, and adds each
    service's own sections; the kernel reads only these."""

    # Each service and where it listens by default: the names ``services`` and
    # ``database_pools.services`` may hold, and the default of ``services``.
    service_ports: ClassVar[Mapping[str, int]] = {}

    retention: RetentionConfig = RetentionConfig()
    http: HttpConfig = HttpConfig()
    limits: LimitsConfig = LimitsConfig()
    service_tickets: ServiceTicketsConfig = ServiceTicketsConfig()
    experiments: Experiments = Experiments()
    # Validated when defaulted too: the validator adds every service's default.
    services: dict[str, DependencyConfig] = Field(default_factory=dict, validate_default=True)
    database_pools: DatabasePoolsConfig = DatabasePoolsConfig()
    config_reload_interval_seconds: float = Field(default=1.0, gt=0)

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: dict[str, DependencyConfig]) -> dict[str, DependencyConfig]:
        only_known_services(value, "dependencies", cls.service_ports)
        merged = default_dependencies(cls.service_ports)
        merged.update(value)
        return merged

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
    # The first key signs; all of them verify (rotation). Required: without one an order
    # would be created and then its payer link could not be signed.
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
