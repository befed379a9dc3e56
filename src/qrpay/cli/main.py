"""The ``qrpay`` command: run the system, its databases and the POS simulator.

Commands stay thin: the work lives in ``qrpay.runner`` and ``qrpay.pos_sim``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qrpay.pos_sim.errors import EXIT_ERROR, PosSimError, error_line

app = typer.Typer(
    name="qrpay",
    help="Pay a restaurant bill by QR code, earn cashback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schemas (alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    typer.echo(error_line(message), err=True)
    return typer.Exit(code)


@app.command()
def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where config, secrets and SQLite files live [default: QRPAY_DATA_DIR or var]"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address every service listens on")] = "127.0.0.1",
    port_base: Annotated[
        int,
        typer.Option(help="Port of api-proxy; the other services follow it (8080 -> 8081..8086)"),
    ] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Where a phone on this network reaches api-proxy, e.g. http://192.168.1.20:8080:"
            " the QR codes point there and api-proxy listens on 0.0.0.0"
        ),
    ] = None,
) -> None:
    """Start every service in one process, with SQLite under the data directory."""
    from qrpay.cli.up import run_up

    code = run_up(
        data_dir=data_dir, host=host, port_base=port_base, console=console, public_url=public_url
    )
    raise typer.Exit(code)


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="The service to run, e.g. iiko-integration")],
    host: Annotated[str | None, typer.Option(help="[default: QRPAY_HOST or 127.0.0.1]")] = None,
    port: Annotated[
        int | None, typer.Option(help="[default: the service's port from SPEC]")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first")] = False,
) -> None:
    """Run one service the production way (uvicorn workers, config from QRPAY_* env)."""
    from qrpay.cli.serve import run_serve

    raise typer.Exit(run_serve(name=name, host=host, port=port, workers=workers, migrate=migrate))


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help="The service whose queue to consume: payments-eda")],
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks run at once")] = 8,
) -> None:
    """Consume a service's durable queue (PostgreSQL, secdist queue_database) until SIGTERM.

    Stopping is graceful: tasks in flight finish, none is lost. `qrpay up` runs the
    consumers in-process instead.
    """
    from qrpay.cli.worker import run_worker_command

    raise typer.Exit(run_worker_command(name=name, concurrency=concurrency, console=console))


@db_app.command("upgrade")
def db_upgrade(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Services to migrate, or queue [default: every service with a database and the queue]"
        ),
    ] = None,
) -> None:
    """Bring each service's schema to the newest revision."""
    from qrpay.cli.database import run_upgrade

    raise typer.Exit(run_upgrade(names or [], console=console))


def _dev_api_key() -> str:
    from qrpay.kernel.config import load_yaml, parse_secdist
    from qrpay.kernel.settings import Settings

    # The committed development secdist, whatever QRPAY_SECDIST says: the demo key is public.
    path = Settings.model_fields["secdist"].default
    keys = parse_secdist(load_yaml(path)).api_keys
    if not keys:
        raise PosSimError(f"no API key in {path}; pass --api-key")
    return keys[0].key.get_secret_value()


@app.command("pos-sim")
def pos_sim(
    url: Annotated[str, typer.Option(help="iiko-integration base URL")] = "http://127.0.0.1:8081",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="QRPAY_POS_API_KEY", help="X-API-Key [default: the dev demo key]"),
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="Restaurant [default: rest-1]")] = None,
    order_id: Annotated[
        str | None, typer.Option(help="The POS's own order id [default: random iiko-xxxxxx]")
    ] = None,
    amount: Annotated[
        str | None, typer.Option(help="Sum to pay [default: the sum of the items]")
    ] = None,
    item: Annotated[
        list[str] | None, typer.Option(help="A bill line NAME=AMOUNT (repeatable)")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="[default: RUB]")] = None,
    bill_file: Annotated[
        Path | None, typer.Option(help="JSON: the whole POST /orders body or just its bill")
    ] = None,
    out_dir: Annotated[Path, typer.Option(help="Where the QR and receipt PNGs go")] = Path("out"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the payment")] = 600.0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Poll the order status until it is final")
    ] = True,
    poll_interval: Annotated[float, typer.Option(help="Seconds between status polls")] = 2.0,
) -> None:
    """Act as a restaurant POS: send a bill, print the QR code, wait for the guest to pay.

    Exit code: 0 paid, 1 canceled / not found / timed out, 2 error.
    """
    from qrpay.pos_sim.bill import build_order_request
    from qrpay.pos_sim.session import SessionOptions, run_session

    try:
        request = build_order_request(
            client_id=client_id,
            order_id=order_id,
            amount=amount,
            items=item,
            currency=currency,
            bill_file=bill_file,
        )
        options = SessionOptions(
            url=url,
            api_key=api_key or _dev_api_key(),
            out_dir=out_dir,
            wait=wait,
            timeout_seconds=timeout,
            poll_interval_seconds=poll_interval,
        )
        code = asyncio.run(run_session(request, options, console))
    except PosSimError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; the order stays open in iiko-integration", 130) from None
    raise typer.Exit(code)


@app.command()
def guest(
    link: Annotated[str, typer.Argument(help="The deep link pos-sim printed (Link: ...)")],
    user: Annotated[str, typer.Option(help="The guest's user id (X-Yandex-UID)")] = "demo-user",
    card: Annotated[
        str | None, typer.Option(help="Pay with this card id without asking; exit 1 if declined")
    ] = None,
    api: Annotated[str, typer.Option(help="payments-eda base URL")] = "http://127.0.0.1:8082",
    cashback_url: Annotated[
        str, typer.Option(help="cashback base URL (for the balance)")
    ] = "http://127.0.0.1:8086",
    language: Annotated[str, typer.Option(help="X-Request-Language")] = "en",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for PAYED or DECLINED")] = 120.0,
) -> None:
    """Act as the guest: open the link, see the bill and cashback, pay with a card, follow it.

    Exit code: 0 paid, 1 declined / closed / not paid, 2 error.
    """
    from qrpay.guest.errors import GuestError
    from qrpay.guest.flow import GuestOptions, prompt_for_card, run_guest

    options = GuestOptions(
        link=link,
        api_url=api,
        cashback_url=cashback_url,
        user_id=user,
        card_id=card,
        language=language,
        timeout_seconds=timeout,
    )
    try:
        code = asyncio.run(run_guest(options, console, prompt_for_card(console)))
    except GuestError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; a payment already started goes on without you", 130) from None
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - `python -m qrpay.cli.main`
    app()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
