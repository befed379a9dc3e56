"""`qrpay support ...` (issue 19) against eda, transactions and payments-eda served
in-process on local ports (SQLite, the in-memory queue), cashback and the refund route
mocked: the command signs as ``support`` with the development key and reads each service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from qrpay.cli.main import app
from qrpay.kernel.queue import TaskQueue
from qrpay.kernel.settings import REPO_DEV_CONFIG
from qrpay.runner.support import default_refund_id
from qrpay.transactions.service import TransactionsService
from tests.support.component.eda import create, move, start
from tests.support.mockserver import MockServer
from tests.support.processes import free_port
from tests.support.services import (
    dev_config,
    make_context,
    point_services_at,
    running_service,
    served,
)
from tests.support.support_tools import task

CASHBACK_VIEW = {
    "order_id": "",
    "accruals": [{"accrual_key": "k1", "amount": "30", "currency": "RUB", "reversed": "0"}],
    "reversals": [],
}


@dataclass
class Deployment:
    order_id: str
    payment_id: str
    queue: TaskQueue
    config: Path
    mock: MockServer

    async def run(self, *args: str) -> Result:
        """The command, in a thread (it runs its own event loop) while the services serve."""
        return await invoke(
            ["support", *args, "--config", str(self.config)],
            {
                # A wide terminal: a table's cells stay on one line.
                "COLUMNS": "300",
                "QRPAY_ENVIRONMENT": "development",
                "QRPAY_SECDIST": str(REPO_DEV_CONFIG / "secdist.yaml"),
            },
        )


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    """``qrpay ARGS`` in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(lambda: CliRunner().invoke(app, args, env=env))


@pytest.fixture
async def deployment(tmp_path: Path, mockserver: MockServer) -> AsyncIterator[Deployment]:
    for name in ("eda", "tx", "pe"):
        (tmp_path / name).mkdir()
    async with AsyncExitStack() as stack:
        eda_ctx = make_context("eda", tmp_path / "eda")
        _eda_app, eda = await stack.enter_async_context(running_service(eda_ctx))
        eda_url = await stack.enter_async_context(served(_eda_app))
        tx_ctx = make_context("transactions", tmp_path / "tx", queue=TaskQueue())
        tx_app, tx = await stack.enter_async_context(running_service(tx_ctx))
        tx_url = await stack.enter_async_context(served(tx_app))
        queue = TaskQueue()
        config = point_services_at(dev_config(), eda_url, "eda")
        config = point_services_at(config, tx_url, "transactions")
        config = point_services_at(config, mockserver.base_url, "cashback")
        pe_ctx = make_context("payments-eda", tmp_path / "pe", config=config, queue=queue)
        pe_app, _pe = await stack.enter_async_context(running_service(pe_ctx))
        pe_url = await stack.enter_async_context(served(pe_app))
        config = point_services_at(config, pe_url, "payments-eda")
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))

        # An order paid by one payment: its invoice in transactions with a hold that
        # succeeded, and a cashback task of it failed in payments-eda's queue.
        order_id = (await create(eda))["order"]["order_id"]
        assert (await start(eda, order_id, "pay-1")).status_code == 200
        assert (await move(eda, order_id, "pay-1", "complete")).status_code == 200
        invoice = {
            "owner": "payments-eda",
            "order_id": order_id,
            "user_id": "user-1",
            "currency": "RUB",
            "callback": {"queue": "payments_eda_transactions", "task": "x"},
        }
        assert (await tx.put("/v1/invoices/pay-1", json=invoice)).status_code == 200
        hold = {
            "operation_id": "pay-1",
            "kind": "hold",
            "amount": "100",
            "payment_method": {"id": "card-ok", "token": "sandbox-ok-4242"},
        }
        assert (await tx.post("/v1/invoices/pay-1/operations", json=hold)).status_code == 200
        await tx_app.state.services[TransactionsService].process_pending()
        await task(queue, "pay-1", order_id=order_id, status="failed")
        yield Deployment(order_id, "pay-1", queue, path, mockserver)


async def test_an_order_across_the_services_for_a_script(deployment: Deployment) -> None:
    cashback = deployment.mock.json_handler(
        f"/v1/cashback/orders/{deployment.order_id}",
        {**CASHBACK_VIEW, "order_id": deployment.order_id},
        method="GET",
    )
    result = await deployment.run("order", deployment.order_id, "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["errors"] == {}
    assert view["missing"] == {}
    assert view["order"]["status"] == "PAYED"
    assert [(p["payment_id"], p["state"]) for p in view["ledger"]["payments"]] == [
        ("pay-1", "paid")
    ]
    [invoice] = view["invoices"]["invoices"]
    assert [(o["operation_id"], o["status"]) for o in invoice["operations"]] == [
        ("pay-1", "succeeded")
    ]
    assert view["cashback"]["accruals"][0]["accrual_key"] == "k1"
    [queued] = view["tasks"]["tasks"]
    assert (queued["status"], queued["attempts"]) == ("failed", 3)
    assert cashback.next_call()["headers"]["X-Ya-Service-Ticket"].startswith("support.cashback.")


async def test_an_order_for_a_person_with_cashback_missing_the_route(
    deployment: Deployment,
) -> None:
    # A cashback without GET /v1/cashback/orders/{id}: FastAPI's plain 404.
    deployment.mock.error_handler(
        f"/v1/cashback/orders/{deployment.order_id}", 404, "not_found", "Not Found", method="GET"
    )
    result = await deployment.run("order", deployment.order_id)
    assert result.exit_code == 0, result.output
    for text in (deployment.order_id, "PAYED", "pay-1", "succeeded", "queue tasks", "failed"):
        assert text in result.stdout, text
    assert "cashback: cashback has no GET /v1/cashback/orders/{order_id}" in result.stdout


async def test_an_unknown_order_fails_with_edas_code(deployment: Deployment) -> None:
    deployment.mock.error_handler(
        "/v1/cashback/orders/no-such-order", 404, "not_found", "Not Found", method="GET"
    )
    result = await deployment.run("order", "no-such-order")
    assert result.exit_code == 2, result.output
    assert "order: eda (404): order_not_found" in result.stderr
    assert "transactions" not in result.stderr  # an order without invoices is no error


async def test_a_failed_task_is_found_among_the_problems_and_retried(
    deployment: Deployment,
) -> None:
    result = await deployment.run("problems", "--json")
    assert result.exit_code == 0, result.output
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["order_id"]) for p in problems] == [("task_failed", deployment.order_id)]
    job_id = problems[0]["task"]["job_id"]
    table = await deployment.run("problems")
    assert "task_failed" in table.stdout
    assert str(job_id) in table.stdout
    retried = await deployment.run("retry", str(job_id))
    assert retried.exit_code == 0, retried.output
    assert f"task {job_id} (payments_eda.accrue_cashback) is todo again" in retried.stdout
    again = await deployment.run("retry", str(job_id))
    assert again.exit_code == 2
    assert "payments-eda (409): task_not_failed" in again.stderr
    # It waits for its run now: a task retried, no longer failed.
    after = json.loads((await deployment.run("problems", "--json")).stdout)["problems"]
    assert [(p["kind"], p["task"]["job_id"]) for p in after] == [("task_retrying", job_id)]


async def test_a_refund_is_asked_of_payments_eda_and_its_answer_printed(
    deployment: Deployment,
) -> None:
    order_id = deployment.order_id
    answer = {
        "refund_id": default_refund_id(order_id, "40.00", "0", "pay-1"),
        "order_id": order_id,
        "status": "refunding",
        "amount": "40.00",
        "tip": "0.00",
        "parts": [
            {
                "part_id": "r.1",
                "payment_id": "pay-1",
                "amount": "40.00",
                "tip": "0.00",
                "state": "refunding",
            }
        ],
    }
    route = deployment.mock.json_handler("/v1/refunds", answer)
    mocked = ["--payments-eda-url", deployment.mock.base_url]
    result = await deployment.run(
        "refund", order_id, "--amount", "40.00", "--payment", "pay-1", *mocked
    )
    assert result.exit_code == 0, result.output
    assert "refunding" in result.stdout
    assert "r.1" in result.stdout
    sent = route.next_call()
    assert sent["json"] == {
        "order_id": order_id,
        "refund_id": answer["refund_id"],
        "amount": "40.00",
        "tip": "0",
        "payment_id": "pay-1",
        "source": "support",
    }
    assert sent["headers"]["X-Ya-Service-Ticket"].startswith("support.payments-eda.")
    # The same command again names the same refund; --refund-id names another.
    await deployment.run("refund", order_id, "--amount", "40.00", "--payment", "pay-1", *mocked)
    assert route.next_call()["json"]["refund_id"] == answer["refund_id"]
    await deployment.run("refund", order_id, "--amount", "40.00", "--refund-id", "r2", *mocked)
    assert route.next_call()["json"]["refund_id"] == "r2"


async def test_a_refused_refund_exits_non_zero_with_the_code(deployment: Deployment) -> None:
    deployment.mock.error_handler("/v1/refunds", 409, "refund_exceeds_paid", "more than was paid")
    result = await deployment.run(
        "refund",
        deployment.order_id,
        "--amount",
        "1000",
        "--json",
        "--payments-eda-url",
        deployment.mock.base_url,
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "refund_exceeds_paid"
    assert "payments-eda (409): refund_exceeds_paid: more than was paid" in result.stderr


async def test_production_refuses_the_development_support_key(deployment: Deployment) -> None:
    dev = str(REPO_DEV_CONFIG / "secdist.yaml")
    result = await invoke(
        ["support", "problems", "--config", str(deployment.config), "--secdist", dev],
        {"QRPAY_ENVIRONMENT": "production"},
    )
    assert result.exit_code == 2
    assert "development_secrets" in result.stderr


async def test_an_unreachable_service_is_said(deployment: Deployment) -> None:
    result = await deployment.run(
        "problems", "--payments-eda-url", f"http://127.0.0.1:{free_port()}"
    )
    assert result.exit_code == 2
    assert "payments_eda_unreachable" in result.stderr
