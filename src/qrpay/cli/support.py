"""``qrpay support ...``: the on-call engineer's tools (issue 19), as the ``support`` identity.

A table for a person, ``--json`` for a script. Any failed call makes the exit code
non-zero, with the service's error code printed (``qrpay.runner.support``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from qrpay.cli.common import EXIT_ERROR, describe, say_error
from qrpay.kernel.settings import Settings
from qrpay.kernel.tickets import SUPPORT_IDENTITY
from qrpay.runner.config import check_secdist, load_config, load_secdist
from qrpay.runner.support import (
    DEFAULT_TIMEOUT_SECONDS,
    SupportClient,
    SupportError,
    base_urls,
    default_refund_id,
)

support_app = typer.Typer(
    help="On-call tools against a deployment's services, as the `support` identity: an "
    "order across the services, problem payments, a failed task retried, a refund.",
    no_args_is_help=True,
)
console = Console(highlight=False, soft_wrap=True)

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The deployment's config: services' base URLs (default: QRPAY_CONFIG, else the development config)",
    ),
]
SecdistOption = Annotated[
    Path | None,
    typer.Option(
        "--secdist",
        help="The support tools' secdist, with the `support` private ticket key (`qrpay "
        "secrets generate` writes support.yaml) (default: QRPAY_SECDIST)",
    ),
]
EdaUrl = Annotated[str | None, typer.Option("--eda-url", help="eda's base URL")]
TransactionsUrl = Annotated[
    str | None, typer.Option("--transactions-url", help="transactions' base URL")
]
PaymentsEdaUrl = Annotated[
    str | None, typer.Option("--payments-eda-url", help="payments-eda's base URL")
]
CashbackUrl = Annotated[str | None, typer.Option("--cashback-url", help="cashback's base URL")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds one call may take")
]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON for a script")]


class Target:
    """Where the services are and what the tools sign with, from the options."""

    def __init__(
        self,
        config: Path | None,
        secdist: Path | None,
        urls: Mapping[str, str | None],
        timeout: float,
    ) -> None:
        chosen: dict[str, Any] = {"config": config, "secdist": secdist}
        settings = Settings(**{k: v for k, v in chosen.items() if v is not None})
        try:
            loaded = load_config(settings.config)
            # Production refuses the development key and any service's key (kernel.production).
            keys = check_secdist(settings, load_secdist(settings.secdist), SUPPORT_IDENTITY)
        except Exception as exc:
            say_error(
                f"bad config or secdist ({settings.config}, {settings.secdist}): {describe(exc)}"
            )
            raise typer.Exit(EXIT_ERROR) from None
        self.urls = base_urls(loaded, urls)
        self.keys = keys.ticket_keys.signing(SUPPORT_IDENTITY)
        self.timeout = timeout

    def run(self, work: Callable[[SupportClient], Awaitable[T]]) -> T:
        async def go() -> T:
            async with SupportClient(self.urls, self.keys, timeout=self.timeout) as client:
                return await work(client)

        return asyncio.run(go())


def target(
    config: Path | None,
    secdist: Path | None,
    timeout: float,
    *,
    eda: str | None = None,
    transactions: str | None = None,
    payments_eda: str | None = None,
    cashback: str | None = None,
) -> Target:
    urls = {
        "eda": eda,
        "transactions": transactions,
        "payments-eda": payments_eda,
        "cashback": cashback,
    }
    return Target(config, secdist, urls, timeout)


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def answered(
    where: Target,
    work: Callable[[SupportClient], Awaitable[Any]],
    as_json: bool,
    show: Callable[[Any], None],
    *,
    on_error: Callable[[], None] = lambda: None,
) -> Any:
    """The answer of ``work``, printed (``show``, or JSON); a failure said and exited."""
    try:
        answer = where.run(work)
    except SupportError as exc:
        on_error()
        raise failed(exc, as_json) from None
    if as_json:
        print_json(answer)
    else:
        show(answer)
    return answer


def failed(exc: SupportError, as_json: bool) -> typer.Exit:
    if as_json:
        print_json({"error": exc.as_json()})
    status = f" ({exc.status})" if exc.status is not None else ""
    say_error(f"{exc.service}{status}: {exc.code}: {exc.message}")
    return typer.Exit(EXIT_ERROR)


# --- tables -------------------------------------------------------------------------------


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> Table:
    """``rows`` as a table: the ``columns`` they have, or all their fields if none are
    named (a newer service's additions). Long values wrap, nothing is cut (--json has
    every field)."""
    present: list[str] = []
    for row in rows:
        present += [key for key in row if key not in present]
    chosen = [c for c in columns if c in present] if columns else present
    result = Table(title=title, title_justify="left")
    for column in chosen:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(cell(row.get(column)) for column in chosen))
    return result


def fields(title: str, data: Mapping[str, Any], keys: Iterable[str]) -> Table:
    """The scalar fields of ``data``: ``keys`` first, as name and value."""
    shown = [k for k in keys if k in data]
    shown += [k for k, v in data.items() if k not in shown and not isinstance(v, list | dict)]
    result = Table(title=title, title_justify="left", show_header=False)
    result.add_column("field")
    result.add_column("value", overflow="fold")
    for key in shown:
        result.add_row(key, cell(data[key]))
    return result


ORDER_FIELDS = ("order_id", "client_id", "internal_order_id", "status", "currency", "total")
LEDGER_FIELDS = ("paid", "held", "left", "tips", "refunded", "refunded_tip")
PAYMENT_COLUMNS = (
    "payment_id",
    "state",
    "amount",
    "tip",
    "refunded",
    "refunded_tip",
    "invoice_id",
    "updated_at",
)
OPERATION_COLUMNS = ("operation_id", "kind", "status", "amount", "target", "reason", "finished_at")
TASK_COLUMNS = ("job_id", "task", "status", "attempts", "started_at", "last_event", "last_event_at")
PROBLEM_COLUMNS = ("kind", "order_id", "payment_id", "state", "at", "job_id", "task", "attempts")
REFUND_PART_COLUMNS = ("part_id", "payment_id", "amount", "tip", "state")


def show_order(view: Mapping[str, Any]) -> None:
    order, ledger = view.get("order") or {}, view.get("ledger") or {}
    if order or ledger:
        summary = {**order, **ledger}
        summary.pop("bill", None)
        console.print(fields(f"order {view['order_id']}", summary, ORDER_FIELDS + LEDGER_FIELDS))
    bill = (order.get("bill") or {}).get("elements") or []
    if bill:
        console.print(table("bill", bill))
    if ledger:
        console.print(table("payments", ledger.get("payments") or [], PAYMENT_COLUMNS))
        if ledger.get("refunds"):
            console.print(table("refunds", ledger["refunds"]))
    for invoice in (view.get("invoices") or {}).get("invoices") or []:
        amounts = ", ".join(
            f"{key} {invoice[key]}"
            for key in ("held", "cleared", "released", "refunded")
            if key in invoice
        )
        title = f"invoice {invoice['invoice_id']} (user {invoice.get('user_id')}; {amounts})"
        console.print(table(title, invoice.get("operations") or [], OPERATION_COLUMNS))
    cashback = view.get("cashback")
    if isinstance(cashback, dict):
        lists = {k: v for k, v in cashback.items() if isinstance(v, list)}
        scalars = {k: v for k, v in cashback.items() if k not in lists}
        if scalars:
            console.print(fields("cashback", scalars, ()))
        for key, rows in lists.items():
            console.print(
                table(f"cashback {key}", [r if isinstance(r, dict) else {key: r} for r in rows])
            )
    for section, reason in (view.get("missing") or {}).items():
        console.print(f"{section}: {reason}", markup=False)
    tasks = (view.get("tasks") or {}).get("tasks")
    if tasks is not None:
        console.print(table("queue tasks", tasks, TASK_COLUMNS))


def show_problems(answer: Mapping[str, Any]) -> None:
    # The task's number, name and attempts in the problem's row (its other fields: --json).
    rows = [
        {
            **problem,
            **{k: (problem.get("task") or {}).get(k) for k in ("job_id", "task", "attempts")},
        }
        for problem in answer.get("problems") or []
    ]
    console.print(table("problems, newest first", rows, PROBLEM_COLUMNS))
    for source, code in (answer.get("unavailable") or {}).items():
        console.print(
            f"{source} did not answer ({code}): its problems are not listed", markup=False
        )


def show_retried(answer: Mapping[str, Any]) -> None:
    console.print(
        f"task {answer['job_id']} ({answer['task']}) is {answer['status']} again, "
        f"attempts {answer['attempts']}",
        markup=False,
    )


def show_refund(answer: Mapping[str, Any]) -> None:
    console.print(fields(f"refund {answer.get('refund_id')}", answer, ()))
    console.print(table("parts", answer.get("parts") or [], REFUND_PART_COLUMNS))


# --- commands -----------------------------------------------------------------------------


@support_app.command("order")
def order(
    order_id: Annotated[str, typer.Argument(help="The order's id (eda's)")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    secdist: SecdistOption = None,
    eda_url: EdaUrl = None,
    transactions_url: TransactionsUrl = None,
    payments_eda_url: PaymentsEdaUrl = None,
    cashback_url: CashbackUrl = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """One view of an order: eda (status, bill, payments, refunds), transactions
    (invoices, operations), cashback (accruals, reversals), the queue (its tasks)."""
    where = target(
        config,
        secdist,
        timeout,
        eda=eda_url,
        transactions=transactions_url,
        payments_eda=payments_eda_url,
        cashback=cashback_url,
    )
    view = where.run(lambda client: client.order(order_id))
    if as_json:
        print_json(view)
    else:
        show_order(view)
    for section, error in view["errors"].items():
        status = f" ({error['status']})" if error["status"] is not None else ""
        say_error(f"{section}: {error['service']}{status}: {error['code']}: {error['message']}")
    if view["errors"]:
        raise typer.Exit(EXIT_ERROR)


@support_app.command("problems")
def problems(
    as_json: JsonOption = False,
    config: ConfigOption = None,
    secdist: SecdistOption = None,
    payments_eda_url: PaymentsEdaUrl = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Problem payments and tasks, newest first: payments under way too long or being
    rolled back, queue tasks failed after every try or waiting for a retry."""
    where = target(config, secdist, timeout, payments_eda=payments_eda_url)
    answer = answered(where, lambda client: client.problems(), as_json, show_problems)
    if answer.get("unavailable"):
        raise typer.Exit(EXIT_ERROR)


@support_app.command("retry")
def retry(
    task_id: Annotated[
        int, typer.Argument(min=1, help="The task's job id (see `order`, `problems`)")
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    secdist: SecdistOption = None,
    payments_eda_url: PaymentsEdaUrl = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Run a failed queue task again now (procrastinate's retry: one more attempt)."""
    where = target(config, secdist, timeout, payments_eda=payments_eda_url)
    answered(where, lambda client: client.retry(task_id), as_json, show_retried)


@support_app.command("refund")
def refund(
    order_id: Annotated[str, typer.Argument(help="The order's id")],
    amount: Annotated[str, typer.Option("--amount", help="Of the bill part, e.g. 100.00")],
    tip: Annotated[str, typer.Option("--tip", help="Of the tip")] = "0",
    payment: Annotated[
        str | None,
        typer.Option(
            "--payment",
            help="The payment to refund (default: eda spreads it over "
            "the paid payments, newest first)",
        ),
    ] = None,
    refund_id: Annotated[
        str | None,
        typer.Option(
            "--refund-id",
            help="The refund's id (default: one derived from the order, amounts and payment: "
            "the same command again is the same refund; give one for another refund)",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    secdist: SecdistOption = None,
    payments_eda_url: PaymentsEdaUrl = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Refund money of an order's payment(s) through payments-eda (docs/refunds.md)."""
    where = target(config, secdist, timeout, payments_eda=payments_eda_url)
    chosen = refund_id or default_refund_id(order_id, amount, tip, payment)

    def said() -> None:
        if not as_json:
            console.print(f"refund id {chosen}: the same command again retries it", markup=False)

    answered(
        where,
        lambda client: client.refund(
            order_id, amount=amount, tip=tip, payment_id=payment, refund_id=chosen
        ),
        as_json,
        show_refund,
        on_error=said,
    )
