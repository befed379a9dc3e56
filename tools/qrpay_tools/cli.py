"""``qrpay-tools``: be the restaurant's POS or the guest against a running qrpay.

These are tools beside the product (the product's own command is ``qrpay``); the
benchmarks and the local cluster run as ``python -m qrpay_tools.bench.*`` and
``python -m qrpay_tools.cluster`` (``make bench-*``, ``make cluster``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qrpay_tools.errors import EXIT_ERROR, ToolError, error_line
from qrpay_tools.pos_sim.errors import PosSimError

app = typer.Typer(
    name="qrpay-tools",
    help="Tools around qrpay: the POS simulator and the guest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    typer.echo(error_line(message), err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def one_line_errors(*, interrupted: str) -> Iterator[None]:
    """A ToolError or Ctrl-C ends the command with one line on stderr, never a traceback."""
    try:
        yield
    except ToolError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; {interrupted}", 130) from None


def _dev_api_key() -> str:
    from qrpay.kernel.config import load_yaml
    from qrpay.kernel.settings import Settings
    from qrpay.runner.config import parse_secdist

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
    push: Annotated[
        bool,
        typer.Option("--push", help="Follow the status over the WebSocket stream, not polling"),
    ] = False,
) -> None:
    """Act as a restaurant POS: send a bill, print the QR code, wait for the guest to pay.

    Exit code: 0 paid, 1 canceled / not found / timed out, 2 error.
    """
    from qrpay_tools.pos_sim.bill import build_order_request
    from qrpay_tools.pos_sim.session import SessionOptions, run_session

    with one_line_errors(interrupted="the order stays open in iiko-integration"):
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
            push=push,
        )
        code = asyncio.run(run_session(request, options, console))
    raise typer.Exit(code)


@app.command("pos-refund")
def pos_refund(
    order_id: Annotated[str, typer.Argument(help="The order id pos-sim printed")],
    amount: Annotated[str, typer.Option(help="Of the bill part")] = "0",
    tip: Annotated[str, typer.Option(help="Of the tips")] = "0",
    payment: Annotated[str | None, typer.Option(help="One payment [default: spread]")] = None,
    refund_id: Annotated[
        str | None, typer.Option(help="The POS's refund id [default: random]")
    ] = None,
    url: Annotated[str, typer.Option(help="iiko-integration base URL")] = "http://127.0.0.1:8081",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="QRPAY_POS_API_KEY", help="X-API-Key [default: the dev demo key]"),
    ] = None,
    client_id: Annotated[str, typer.Option(help="Restaurant")] = "rest-1",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the outcome")] = 60.0,
) -> None:
    """Refund a guest of a paid order from the POS, and print the order's payments."""
    from qrpay_tools.pos_sim.refund import RefundOptions, run_refund

    with one_line_errors(interrupted="the refund, if sent, goes on"):
        options = RefundOptions(
            url=url,
            api_key=api_key or _dev_api_key(),
            client_id=client_id,
            order_id=order_id,
            amount=amount,
            tip=tip,
            payment_id=payment,
            refund_id=refund_id,
            timeout=timeout,
        )
        code = asyncio.run(run_refund(options, Console()))
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
    share: Annotated[
        str | None,
        typer.Option(help="Pay a share: rest, equal:N, items:I,J (bill lines from 0), amount:X"),
    ] = None,
    tip: Annotated[
        str | None, typer.Option(help="With --share: a tip, 10% (offered ones) or an amount")
    ] = None,
) -> None:
    """Act as the guest: open the link, see the bill and cashback, pay with a card, follow it.

    Exit code: 0 paid, 1 declined / closed / not paid, 2 error.
    """
    from qrpay_tools.guest.flow import GuestOptions, prompt_for_card, run_guest

    options = GuestOptions(
        link=link,
        api_url=api,
        cashback_url=cashback_url,
        user_id=user,
        card_id=card,
        language=language,
        timeout_seconds=timeout,
        share=share,
        tip=tip,
    )
    with one_line_errors(interrupted="a payment already started goes on without you"):
        code = asyncio.run(run_guest(options, console, prompt_for_card(console)))
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - `python -m qrpay_tools.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
