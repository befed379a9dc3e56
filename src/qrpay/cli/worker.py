"""``qrpay worker NAME``: the production queue consumer of a service."""

from __future__ import annotations

import asyncio

import uvloop
from prometheus_client import start_http_server
from rich.console import Console

from qrpay.cli.common import describe, safe_url, say_error, settings_with
from qrpay.kernel.logging import configure_logging
from qrpay.runner.context import durable_queue, known_services, make_context
from qrpay.runner.worker import WorkerError, run_worker, services_with_workers, worker_factory


def run_worker_command(
    *,
    name: str,
    concurrency: int,
    console: Console,
    metrics_address: tuple[str, int] | None = None,
) -> int:
    if name not in known_services():
        say_error(f"unknown service {name!r}; known: {', '.join(known_services())}")
        return 2
    try:
        settings = settings_with()
    except Exception as exc:
        say_error(f"cannot start the {name} worker: {describe(exc)}")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        worker_factory(name)
    except WorkerError as exc:
        say_error(f"{exc}; services with workers: {', '.join(services_with_workers()) or 'none'}")
        return 2
    except Exception as exc:
        say_error(f"cannot load {name}: {describe(exc)}")
        return 2
    try:
        # The worker's own HTTP app is not running: its periodic jobs belong to `qrpay serve`.
        ctx = make_context(name, settings, background_jobs=False, queue_workers=True)
    except Exception as exc:
        say_error(f"bad config or secdist ({settings.config}, {settings.secdist}): {describe(exc)}")
        return 2
    queue = durable_queue(ctx)
    if queue is None:
        say_error(
            f"no queue_database in secdist {settings.secdist}: `qrpay worker` consumes the "
            "durable PostgreSQL queue (`qrpay up` runs the consumers in-process instead)"
        )
        return 2
    ctx.queue = queue
    where = safe_url(queue.url or "")

    def started(queues: list[str]) -> None:
        console.print(
            f"{name} worker: consuming {', '.join(queues)} on {where} "
            f"(concurrency {concurrency}); SIGTERM or Ctrl-C stops it gracefully",
            markup=False,
        )

    async def main() -> None:
        await run_worker(ctx, concurrency=concurrency, on_started=started)

    exporter = None
    try:
        if metrics_address is not None:
            # A thread of prometheus_client's own: scrapes never wait for the event loop.
            exporter, _ = start_http_server(
                metrics_address[1], metrics_address[0], registry=ctx.metrics.registry
            )
            console.print(
                f"{name} worker: metrics on http://{metrics_address[0]}:{metrics_address[1]}"
                "/metrics",
                markup=False,
            )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except WorkerError as exc:
        say_error(str(exc))
        return 2
    except Exception as exc:
        say_error(f"{name} worker stopped: {describe(exc)}")
        return 2
    finally:
        if exporter is not None:
            exporter.shutdown()
    console.print(f"{name} worker stopped.", markup=False)
    return 0
