"""The ``qrpay`` command: what a deployment runs (up, serve, worker, db, secrets) and the
on-call engineer's tools (support).

Commands stay thin: the work lives in ``qrpay.runner``. The POS simulator, the guest,
the benchmarks and the local cluster are tools: ``qrpay-tools`` (``tools/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qrpay.cli.common import EXIT_ERROR, error_line
from qrpay.cli.support import support_app

app = typer.Typer(
    name="qrpay",
    help="Pay a restaurant bill by QR code, earn cashback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schemas (alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
secrets_app = typer.Typer(help="Secdist files for a deployment.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
app.add_typer(support_app, name="support")

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
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the worker's Prometheus metrics on this port (/metrics)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="The address of --metrics-port")] = "127.0.0.1",
) -> None:
    """Consume a service's durable queue (PostgreSQL, secdist queue_database) until SIGTERM.

    Stopping is graceful: tasks in flight finish, none is lost. `qrpay up` runs the
    consumers in-process instead. The payment outcomes the tasks count (problem orders,
    cashback problems, overdue payments) are this process's metrics: scrape --metrics-port.
    """
    from qrpay.cli.worker import run_worker_command

    raise typer.Exit(
        run_worker_command(
            name=name,
            concurrency=concurrency,
            console=console,
            metrics_address=(metrics_host, metrics_port) if metrics_port is not None else None,
        )
    )


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


@secrets_app.command("generate")
def secrets_generate(
    directory: Annotated[Path, typer.Argument(help="Where to write <service>.yaml files")],
) -> None:
    """Write a fresh secdist per service: its own ticket signing key, its callers' public
    keys, new shared secrets. Each process then runs with QRPAY_SECDIST=<its file>."""
    from qrpay.runner.secrets import write_deployment_secdists

    try:
        paths = write_deployment_secdists(directory)
    except FileExistsError as exc:
        raise fail(
            f"{exc}: rotate by hand (docs/security.md) or choose another directory"
        ) from None
    for path in paths:
        console.print(f"wrote {path}", markup=False)
    console.print("add api_keys (POS) and databases to each file that needs them", markup=False)


def main() -> None:  # pragma: no cover - `python -m qrpay.cli.main`
    app()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
