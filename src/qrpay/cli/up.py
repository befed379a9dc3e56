"""``qrpay up``: the whole system in one process (SPEC 3, embedded mode)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import uvloop
from rich.console import Console

from qrpay.cli.common import describe, migrated, relative, say_error, settings_with
from qrpay.kernel.config import load_yaml
from qrpay.kernel.logging import configure_logging
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import Environment, Settings
from qrpay.kernel.tickets import TOOLS_IDENTITY, tools_signer
from qrpay.runner.config import load_secdist, parse_config
from qrpay.runner.context import build_service_app, has_database, known_services, make_context
from qrpay.runner.demo import SeededCard, bind_demo_cards
from qrpay.runner.embedded import (
    BASE_PORT,
    PUBLIC_BIND,
    EmbeddedError,
    bind_all,
    client_host,
    payer_page_url,
    ports_for,
    prepare_data_dir,
    public_base,
    serve_all,
    url_host,
)


def run_up(
    *,
    data_dir: Path | None,
    host: str,
    port_base: int,
    console: Console,
    public_url: str | None = None,
) -> int:
    data_dir = data_dir or Settings().data_dir
    ports = ports_for(port_base)
    if min(ports.values()) < 1 or max(ports.values()) > 65535:
        say_error(f"--port-base {port_base} puts ports outside 1..65535")
        return 2
    # --public-url: the deep links point there and api-proxy alone listens on 0.0.0.0.
    public: str | None = None
    if public_url:
        try:
            public = public_base(public_url)
        except EmbeddedError as exc:
            say_error(str(exc))
            return 2
    # An interactive run wants quiet, readable logs unless the operator asked otherwise.
    os.environ.setdefault("QRPAY_LOG_LEVEL", "WARNING")
    os.environ.setdefault("QRPAY_LOG_FORMAT", "console")
    try:
        files = prepare_data_dir(data_dir, host, port_base, public)
    except Exception as exc:
        say_error(f"cannot prepare {data_dir}: {describe(exc)}")
        return 2
    settings = settings_with(
        data_dir=data_dir, host=host, config=files.config, secdist=files.secdist
    ).model_copy(
        # The embedded mode is development whatever the environment says: its secdist is a
        # copy of the public development file, its sign-in the demo users'.
        update={"environment": Environment.DEVELOPMENT}
    )
    configure_logging(settings.log_level, settings.log_format)
    services = known_services()

    try:
        sockets = bind_services(host, ports, services, public=public is not None)
    except EmbeddedError as exc:
        say_error(str(exc))
        return 2

    # One in-memory queue shared by every service: transactions puts callbacks on it and
    # payments-eda consumes them in this process (production: PostgreSQL + `qrpay worker`).
    queue = TaskQueue()
    try:
        contexts = {
            name: make_context(
                name, settings, background_jobs=True, queue=queue, queue_workers=True
            )
            for name in services
        }
    except Exception as exc:
        _close(sockets)
        say_error(f"bad config or secdist ({settings.config}, {settings.secdist}): {describe(exc)}")
        return 2

    for name, ctx in contexts.items():
        if not has_database(name):
            continue
        # alembic is synchronous: run it before the event loop exists.
        if not migrated(name, ctx.database_url()):
            _close(sockets)
            return 2

    try:
        apps = {name: build_service_app(ctx) for name, ctx in contexts.items()}
    except Exception as exc:
        _close(sockets)
        say_error(f"cannot build the services: {describe(exc)}")
        return 2

    async def announce() -> None:
        cards = await seed_demo(contexts)
        print_next_steps(console, settings, data_dir, host, port_base, services, cards, public)

    async def run() -> list[str]:
        try:
            return await serve_all(apps, sockets, host, on_started=announce)
        finally:
            await queue.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        failed = runner.run(run())
    _close(sockets)
    if failed:
        say_error(f"{', '.join(failed)} failed to start (see the log above); stopped everything")
        return 1
    console.print("qrpay stopped.", markup=False)
    return 0


async def seed_demo(contexts: dict[str, ServiceContext]) -> list[SeededCard] | None:
    """Bind the demo guest's cards in cardstorage; None (and a warning) if that failed."""
    ctx = contexts.get("cardstorage")
    if ctx is None:
        return None
    demo = ctx.runtime.config.demo
    try:
        tools = tools_signer(ctx.runtime.secdist.ticket_keys.signing(TOOLS_IDENTITY))
        return await bind_demo_cards(demo, ctx.dependency("cardstorage"), tools.ticket)
    except Exception as exc:
        say_error(
            f"could not bind the demo cards in cardstorage (paying will not work): {describe(exc)}"
        )
        return None


def bind_services(
    host: str, ports: dict[str, int], services: list[str], *, public: bool
) -> dict[str, socket.socket]:
    """Every service on ``host``; with a public URL, api-proxy on every interface instead."""
    exposed = ["api-proxy"] if public and "api-proxy" in services else []
    sockets = bind_all(host, ports, [name for name in services if name not in exposed])
    try:
        sockets.update(bind_all(PUBLIC_BIND, ports, exposed))
    except EmbeddedError:
        _close(sockets)
        raise
    return sockets


def _close(sockets: dict[str, socket.socket]) -> None:
    for sock in sockets.values():
        sock.close()


def print_next_steps(
    console: Console,
    settings: Settings,
    data_dir: Path,
    host: str,
    port_base: int,
    services: list[str],
    cards: list[SeededCard] | None = None,
    public_url: str | None = None,
) -> None:
    ports = ports_for(port_base)
    reach = url_host(client_host(host))
    iiko_url = f"http://{reach}:{ports['iiko-integration']}"
    pos_cmd = (
        "qrpay-tools pos-sim"
        if iiko_url == "http://127.0.0.1:8081"
        else f"qrpay-tools pos-sim --url {iiko_url}"
    )
    try:
        keys = load_secdist(settings.secdist).api_keys
        key_names = ", ".join(f"{key.name} ({', '.join(sorted(key.client_ids))})" for key in keys)
    except Exception:
        key_names = "see the secdist file"
    console.print(
        f"[bold green]qrpay is up[/] — {len(services)} services, data in {relative(data_dir)}"
    )
    console.print(f"  config:   {settings.config}", markup=False)
    console.print(f"  secdist:  {settings.secdist}", markup=False)
    for name in services:
        console.print(f"  {name:<17} http://{reach}:{ports[name]}/ping", markup=False)
    console.print("Next:", markup=False)
    console.print(f"  POS simulator:  {pos_cmd}", markup=False)
    console.print(f"  demo API key:   {key_names or 'none configured'}", markup=False)
    payer = payer_page_url(host, port_base, public_url)
    note = "" if "api-proxy" in services else " (api-proxy is not part of this build yet)"
    console.print(
        f"  payer page:     {payer}?order_id=...&hmac=... (the POS's Link){note}", markup=False
    )
    sign_in = payer.removesuffix("/go-pay/orders")
    console.print(
        f"  guest sign-in:  {sign_in}/login (development: pick a demo user)", markup=False
    )
    if public_url:
        console.print(
            f"  api-proxy listens on {PUBLIC_BIND}:{ports['api-proxy']} for phones on this network",
            markup=False,
        )
    if cards:
        print_demo_cards(console, settings, reach, ports, cards)
    if port_base != BASE_PORT:
        console.print(
            f"  (ports shifted by {port_base - BASE_PORT} from the defaults)", markup=False
        )
    console.print("Press Ctrl-C to stop.", markup=False)


def print_demo_cards(
    console: Console,
    settings: Settings,
    reach: str,
    ports: dict[str, int],
    cards: list[SeededCard],
) -> None:
    try:
        user = parse_config(load_yaml(settings.config)).demo.user_id
    except Exception:
        user = "demo-user"
    console.print(f"Demo guest {user!r}, cards bound in cardstorage:", markup=False)
    for card in cards:
        console.print(
            f"  {card.id:<15} {card.mask:<10} {card.expiry:<6} {card.label}", markup=False
        )
    options = ""
    if ports["payments-eda"] != 8082:
        options += f" --api http://{reach}:{ports['payments-eda']}"
        options += f" --cashback-url http://{reach}:{ports['cashback']}"
    if user != "demo-user":
        options += f" --user {user}"
    first = cards[0].id
    console.print(
        f"  guest:          qrpay-tools guest '<the Link: pos-sim printed>' --card {first}{options}",
        markup=False,
    )
