"""Fresh secdist files for a deployment, one per service (``qrpay secrets generate``, issue 20).

Each service's file holds its own new ticket signing key and the public keys of exactly
the services its routes let call it (their ``allow(...)`` declarations, read from the
routers: nothing to keep in step by hand), and only the other secrets it uses, all new:
the payer-link hmac key for iiko-integration (signs) and payments-eda (checks), the
session secret for api-proxy. POS API keys and database URLs are the operator's to add. A production process refuses any other service's private key
and any development value (kernel/production.py).

The support tools (``qrpay support``, ``SUPPORT_IDENTITY``) get a file of their own,
``support.yaml``: their private key only (and an hmac key of their own, which opens
nothing: every secdist has one); the services whose routes allow them get its public key.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from qrpay.kernel.callers import callers_of
from qrpay.kernel.service import ServiceApp
from qrpay.kernel.tickets import SUPPORT_IDENTITY, new_private_key, public_half
from qrpay.runner.config import parse_secdist
from qrpay.runner.registry import SERVICE_MODULES

# The services that sign (iiko-integration) or check (payments-eda) the payer links.
LINK_KEY_HOLDERS = frozenset({"iiko-integration", "payments-eda"})
HEADER = (
    "# Written by `qrpay secrets generate`: this service's secrets, never committed.\n"
    "# ticket_keys.private: this service's own signing key only; ticket_keys.public: the\n"
    "# services that may call it. Rotation: docs/security.md.\n"
)


def callers_by_service() -> dict[str, frozenset[str]]:
    """For each service, the services its routes let call it."""
    result = {}
    for service, module in SERVICE_MODULES.items():
        declaration: ServiceApp = importlib.import_module(module).SERVICE
        result[service] = callers_of(declaration.router.routes)
    return result


def deployment_secdists(
    services: Iterable[str] | None = None, *, extra_public: dict[str, list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """The secdist data of each service (all of them by default), every secret new.
    ``extra_public``: public keys every service also takes (the local tools' key, for a
    development cluster only)."""
    callers = callers_by_service()
    names = list(services) if services is not None else [*callers, SUPPORT_IDENTITY]
    private = {name: new_private_key() for name in [*callers, SUPPORT_IDENTITY]}
    link_key = secrets.token_urlsafe(32)
    result = {}
    for name in names:
        public = {
            caller: [public_half(private[caller])] for caller in sorted(callers.get(name, ()))
        }
        result[name] = {
            "api_keys": [],
            # Required by every secdist; a service that neither signs nor checks payer
            # links gets a key of its own, which opens nothing.
            "hmac_keys": [link_key if name in LINK_KEY_HOLDERS else secrets.token_urlsafe(32)],
            "session_secrets": [secrets.token_urlsafe(32)] if name == "api-proxy" else None,
            "databases": {},
            "ticket_keys": {
                "private": {name: [private[name]]},
                "public": public | (extra_public or {}),
            },
        }
    return result


def write_deployment_secdists(directory: Path) -> list[Path]:
    """One ``<service>.yaml`` per service, and ``support.yaml``, in ``directory`` (mode
    0600); refuses to overwrite."""
    data = deployment_secdists()
    paths = [directory / f"{service}.yaml" for service in data]
    existing = [path.name for path in paths if path.exists()]
    if existing:
        raise FileExistsError(f"{directory} already has {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    for path, secdist in zip(paths, data.values(), strict=True):
        parse_secdist(secdist)  # never write a file the services would refuse
        path.touch(mode=0o600)
        path.write_text(HEADER + yaml.safe_dump(secdist, sort_keys=False))
    return paths
