"""Queue consumers called directly with their payloads (SPEC 4.4), and the queue wiring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from qrpay.kernel.errors import DependencyUnavailable, QrpayError
from qrpay.kernel.queue import TaskQueue
from qrpay.payments_eda import tasks
from qrpay.payments_eda.app import build_worker
from tests.support.component.payments_eda import (
    ORDER_ID,
    PAYMENT,
    USER,
    Env,
    callback,
    invoice_body,
    operation_body,
    order_body,
)
from tests.support.mockserver import (
    MockServer,
    drop_connection,
    error_response,
    json_response,
)
from tests.support.services import make_context
from tests.support.waiting import eventually

CASHBACK = "payments_eda.accrue_cashback"


IN_PROGRESS = {"status": "PAYMENT_IN_PROGRESS", "payment_id": PAYMENT}
PAID = {"status": "PAYED", "payment_id": PAYMENT}
CLEARING = {"status": "PAYMENT_IN_PROGRESS", "payment_id": PAYMENT, "phase": "CLEARING"}
ROLLING_BACK = {"status": "PAYMENT_IN_PROGRESS", "payment_id": PAYMENT, "phase": "ROLLING_BACK"}


# --- hold -------------------------------------------------------------------------------------


async def test_hold_succeeded_claims_the_order_then_starts_the_clear(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    claim = pe.eda_write("claim-clear", order_body(**CLEARING))
    ops = pe.operations(operation_body("p1.clear", "clear", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())
    assert claim.next_call()["json"] == {"payment_id": PAYMENT}
    assert ops.next_call()["json"] == {
        "operation_id": "p1.clear",
        "kind": "clear",
        "target": PAYMENT,
    }


async def test_hold_succeeded_twice_starts_the_same_clear(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.eda_write("claim-clear", order_body(**CLEARING))
    ops = pe.operations(operation_body("p1.clear", "clear", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())
    await pe.handlers.transaction_callback(callback())
    assert [c["json"]["operation_id"] for c in ops.calls] == ["p1.clear", "p1.clear"]


async def test_hold_succeeded_while_rolling_back_is_released_not_cleared(pe: Env) -> None:
    pe.order(**ROLLING_BACK)
    ops = pe.operations(operation_body("p1.unhold", "unhold", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())  # claim-clear is not mocked
    assert ops.next_call()["json"]["kind"] == "unhold"


async def test_a_refused_clear_claim_raises_for_a_retry_without_a_clear(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.eda_write("claim-clear", {"code": "payment_rolling_back", "message": "no"}, 409)
    with pytest.raises(QrpayError):
        await pe.handlers.transaction_callback(callback())  # operations are not mocked


async def test_hold_succeeded_on_a_paid_order_does_nothing(pe: Env) -> None:
    pe.order(**PAID)
    await pe.handlers.transaction_callback(callback())  # transactions is not mocked


@pytest.mark.parametrize(
    "order",
    [
        {"status": "CANCELED"},
        {"status": "WAITING"},  # rolled back by the pay request or the watchdog
        {"status": "PAYMENT_IN_PROGRESS", "payment_id": "another"},
    ],
)
async def test_hold_succeeded_on_an_order_not_waiting_for_it_is_released(
    pe: Env, order: dict[str, Any]
) -> None:
    pe.order(**order)
    ops = pe.operations(operation_body("p1.unhold", "unhold", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())
    assert ops.next_call()["json"] == {
        "operation_id": "p1.unhold",
        "kind": "unhold",
        "target": PAYMENT,
    }


async def test_hold_failed_gives_the_order_back_and_counts_a_problem(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    fail = pe.eda_write("fail", order_body())
    await pe.handlers.transaction_callback(callback(status="failed"))
    assert fail.next_call()["json"] == {"payment_id": PAYMENT}
    assert pe.metric("qrpay_problem_orders_total", reason="hold_failed") == 1


async def test_hold_failed_ignores_a_payment_that_moved_on(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.eda_write("fail", {"code": "payment_mismatch", "message": "other"}, 409)
    await pe.handlers.transaction_callback(callback(status="failed"))


async def test_hold_failed_twice_fails_once(pe: Env) -> None:
    pe.order("WAITING")  # the first callback already rolled it back
    await pe.handlers.transaction_callback(callback(status="failed"))
    assert pe.metric("qrpay_problem_orders_total", reason="hold_failed") == 0


# --- clear ------------------------------------------------------------------------------------


async def test_clear_succeeded_marks_paid_and_queues_cashback(pe: Env) -> None:
    pe.order(**CLEARING)
    complete = pe.eda_write("complete", order_body(**PAID))
    await pe.handlers.transaction_callback(callback("p1.clear", "clear", target=PAYMENT))
    assert complete.next_call()["json"] == {"payment_id": PAYMENT}
    [job] = pe.jobs(CASHBACK)
    assert job["queueing_lock"] == f"cashback:{ORDER_ID}"
    assert job["args"] == {"order_id": ORDER_ID}
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 1


# What payments-eda asks cashback for on a paid 1000 RUB bill at rest-1 (30%).
ACCRUAL_REQUEST = {"user_id": USER, "amount": "300", "currency": "RUB", "source": "rest-1"}


def accrual_route(pe: Env, status: int = 200) -> Any:
    """cashback's PUT /v1/accruals/{order}: the accrual made, or an error ``status``."""
    body: Any = {
        "accrual": {
            "order_id": ORDER_ID,
            "user_id": USER,
            "amount": "300",
            "currency": "RUB",
            "source": "rest-1",
            "created_at": "2026-01-01T12:00:00Z",
        },
        "created": True,
    }
    if status != 200:
        body = {"code": "accruals_disabled", "message": "off"}
    return pe.mock.json_handler(f"/v1/accruals/{ORDER_ID}", body, status, method="PUT")


@pytest.mark.parametrize("order", [IN_PROGRESS, ROLLING_BACK], ids=["holding", "rolling_back"])
async def test_a_captured_clear_completes_the_order_and_accrues_in_the_same_task(
    pe: Env, order: dict[str, str]
) -> None:
    """One task per payment: the clear's callback completes the order (from whichever phase:
    a rollback that began yielded to the capture) and accrues the cashback right away."""
    pe.order(**order)
    complete = pe.eda_write("complete", order_body(**PAID))
    accrue = accrual_route(pe)
    await pe.handlers.transaction_callback(
        {**callback("p1.clear", "clear", target=PAYMENT), "user_id": USER}
    )
    assert complete.next_call()["json"] == {"payment_id": PAYMENT}
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST
    assert pe.jobs(CASHBACK) == []  # no task of its own


async def test_an_accrual_that_fails_in_the_callback_gets_its_own_task(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.eda_write("complete", order_body(**PAID))
    accrue = accrual_route(pe, 503)
    await pe.handlers.transaction_callback(
        {**callback("p1.clear", "clear", target=PAYMENT), "user_id": USER}
    )
    assert accrue.times_called >= 1
    [job] = pe.jobs(CASHBACK)  # retried there, given up and counted after its tries
    assert job["args"] == {"order_id": ORDER_ID}
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 1


async def test_clear_succeeded_duplicate_queues_cashback_once(pe: Env) -> None:
    pe.order(**PAID)
    await pe.handlers.transaction_callback(callback("p1.clear", "clear", target=PAYMENT))
    await pe.handlers.transaction_callback(callback("p1.clear", "clear", target=PAYMENT))
    assert len(pe.jobs(CASHBACK)) == 1
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 0


async def test_out_of_order_clear_before_hold(pe: Env) -> None:
    """The clear's callback overtakes the hold's: the order is paid once, no second clear."""
    route = pe.order(**CLEARING)
    pe.eda_write("complete", order_body(**PAID))
    await pe.handlers.transaction_callback(callback("p1.clear", "clear", target=PAYMENT))
    route.handler = lambda _r: order_body(**PAID)
    await pe.handlers.transaction_callback(callback())  # hold succeeded, late: nothing to do
    assert len(pe.jobs(CASHBACK)) == 1


async def test_a_clear_refused_for_good_is_never_turned_into_a_release(pe: Env) -> None:
    """Issue 9 (2): the money was held for a claimed clear; releasing it is not ours to do."""
    pe.order(**CLEARING)
    await pe.handlers.transaction_callback(  # operations and fail are not mocked
        callback("p1.clear", "clear", status="failed", target=PAYMENT)
    )
    assert pe.metric("qrpay_problem_orders_total", reason="clear_failed") == 1
    assert pe.jobs(CASHBACK) == []


async def test_clear_succeeded_raises_when_eda_is_down(pe: Env) -> None:
    pe.order(**CLEARING)
    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payment/complete")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await pe.handlers.transaction_callback(callback("p1.clear", "clear", target=PAYMENT))
    assert pe.jobs(CASHBACK) == []


# --- unhold -----------------------------------------------------------------------------------


async def test_unhold_succeeded_gives_the_order_back(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    fail = pe.eda_write("fail", order_body())
    await pe.handlers.transaction_callback(callback("p1.unhold", "unhold", target=PAYMENT))
    assert fail.times_called == 1


async def test_unhold_succeeded_on_a_closed_order_does_nothing(pe: Env) -> None:
    pe.order("CANCELED")
    await pe.handlers.transaction_callback(callback("p1.unhold", "unhold", target=PAYMENT))


async def test_unhold_failed_raises_for_a_retry(pe: Env) -> None:
    pe.order("CANCELED")
    with pytest.raises(QrpayError):
        await pe.handlers.transaction_callback(
            callback("p1.unhold", "unhold", status="failed", target=PAYMENT)
        )


@pytest.mark.parametrize("down", ["eda", "transactions"])
async def test_a_failing_step_raises_for_a_retry(pe: Env, down: str) -> None:
    if down == "eda":
        pe.mock.handler(f"/v1/orders/{ORDER_ID}", "GET")(drop_connection)
    else:
        pe.order(**CLEARING)
        pe.mock.handler(f"/v1/invoices/{ORDER_ID}/operations")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await pe.handlers.transaction_callback(callback())


async def test_a_callback_with_a_field_added_later_is_still_understood(pe: Env) -> None:
    pe.order(**PAID)
    await pe.handlers.transaction_callback({**callback(), "added_later": 1})


# --- cashback ---------------------------------------------------------------------------------


async def test_cashback_is_accrued_for_a_paid_order(pe: Env) -> None:
    pe.order(**PAID)
    pe.invoice(invoice_body())
    accrue = accrual_route(pe)
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 1)
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST


async def test_zero_cashback_accrues_nothing(pe: Env) -> None:
    pe.order(amount="2", **PAID)  # 30% of 2 rounds down to 0
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 1)  # nothing else is mocked


async def test_no_cashback_for_an_unpaid_order(pe: Env) -> None:
    pe.order("WAITING")
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 1)


async def test_cashback_failing_is_retried_then_recorded_as_a_problem(
    pe_factory: Callable[..., Any],
) -> None:
    async with pe_factory(payments={"cashback_max_attempts": 5}) as pe:
        pe.order(**PAID)
        pe.invoice(invoice_body())
        accrue = pe.mock.handler(f"/v1/accruals/{ORDER_ID}", "PUT")(
            lambda _r: error_response(503, "accruals_disabled")
        )
        for attempt in range(1, 5):
            with pytest.raises(DependencyUnavailable):
                await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, attempt)
        assert pe.metric("qrpay_cashback_problems_total") == 0
        await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 5)  # the last try: no raise
        assert pe.metric("qrpay_cashback_problems_total") == 1
        assert accrue.times_called >= 5


async def test_a_cashback_problem_does_not_undo_the_payment(
    pe_factory: Callable[..., Any],
) -> None:
    async with pe_factory(payments={"cashback_max_attempts": 5}) as pe:
        pe.order(**PAID)
        pe.invoice({"code": "x", "message": "down"}, 500)
        await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 5)
        # Only reads happened: eda's order stays paid, no unhold was asked for (unmocked).
        assert pe.metric("qrpay_cashback_problems_total") == 1


# --- hold watchdog ----------------------------------------------------------------------------


WATCHDOG_PAYLOAD = {"order_id": ORDER_ID, "payment_id": PAYMENT}


@pytest.mark.parametrize("invoice", [404, [], [operation_body("p0", status="failed")]])
async def test_watchdog_rolls_back_a_payment_that_never_got_its_hold(pe: Env, invoice: Any) -> None:
    pe.order(**IN_PROGRESS)
    void_path = f"/v1/invoices/{ORDER_ID}/operations/{PAYMENT}/void"
    if invoice == 404:
        pe.invoice({"code": "invoice_not_found", "message": "no"}, 404)
        void = pe.mock.json_handler(void_path, {"code": "invoice_not_found", "message": "no"}, 404)
    else:
        pe.invoice(invoice_body(invoice))
        void = pe.mock.json_handler(void_path, {"operation_id": PAYMENT, "outcome": "voided"})
    begin = pe.eda_write("begin-rollback", order_body(**ROLLING_BACK))
    fail = pe.eda_write("fail", order_body())
    await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)
    # Claimed in eda, voided in transactions (a late hold then finds a canceled record),
    # and only then given back.
    assert begin.next_call()["json"] == {"payment_id": PAYMENT}
    assert void.next_call()["json"] == {"release_operation_id": f"{PAYMENT}.unhold"}
    assert fail.next_call()["json"] == {"payment_id": PAYMENT}
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 1


async def test_the_sweep_checks_overdue_and_rolling_back_payments(pe: Env) -> None:
    """No task per payment: the sweep asks eda for payments under way past
    hold_watchdog_seconds and for those being rolled back, and checks each once."""
    overdue = order_body(**IN_PROGRESS)
    listing = pe.mock.handler("/v1/orders", "GET")(
        lambda request: json_response(
            {"orders": [] if request.query.get("payment_phase") else [overdue]}
        )
    )
    pe.order(**IN_PROGRESS)
    pe.invoice({"code": "invoice_not_found", "message": "no"}, 404)
    pe.mock.json_handler(
        f"/v1/invoices/{ORDER_ID}/operations/{PAYMENT}/void",
        {"code": "invoice_not_found", "message": "no"},
        404,
    )
    pe.eda_write("begin-rollback", order_body(**ROLLING_BACK))
    fail = pe.eda_write("fail", order_body())
    no_overdue_shares(pe.mock)
    assert await pe.service.sweep_stuck_payments() == 1
    assert fail.next_call()["json"] == {"payment_id": PAYMENT}
    queries = sorted(tuple(sorted(call["query"].items())) for call in listing.calls)
    cutoff = (pe.ctx.clock.now() - timedelta(seconds=30)).isoformat()
    assert queries == sorted(
        [
            (("limit", "100"), ("status", "PAYMENT_IN_PROGRESS"), ("updated_before", cutoff)),
            (
                ("limit", "100"),
                ("payment_phase", "ROLLING_BACK"),
                ("status", "PAYMENT_IN_PROGRESS"),
            ),
        ]
    )
    assert pe.metric("qrpay_payments_overdue") == 1


async def test_a_payment_the_sweep_cannot_check_now_is_left_for_the_next(pe: Env) -> None:
    pe.mock.json_handler("/v1/orders", {"orders": [order_body(**IN_PROGRESS)]}, method="GET")
    pe.order(**IN_PROGRESS)
    pe.invoice({"code": "x", "message": "down"}, 500)
    no_overdue_shares(pe.mock)
    assert await pe.service.sweep_stuck_payments() == 1  # logged, not raised


async def test_watchdog_waits_while_the_voided_hold_is_at_the_gateway(pe: Env) -> None:
    pe.order(**ROLLING_BACK)
    pe.mock.json_handler(
        f"/v1/invoices/{ORDER_ID}/operations/{PAYMENT}/void",
        {"operation_id": PAYMENT, "outcome": "in_flight"},
    )
    pe.eda_write("begin-rollback", order_body(**ROLLING_BACK))
    with pytest.raises(DependencyUnavailable):  # the queue tries again; fail is not mocked
        await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)


async def test_watchdog_yields_to_a_captured_clear(pe: Env) -> None:
    """The hold succeeded and its capture is recorded: the void is refused, the order is
    not given back and nothing is counted; the clear's callback completes it."""
    pe.order(**IN_PROGRESS)
    pe.invoice(invoice_body([operation_body(PAYMENT, status="failed")]))  # read as not under way
    pe.eda_write("begin-rollback", order_body(**ROLLING_BACK))
    void = pe.mock.json_handler(
        f"/v1/invoices/{ORDER_ID}/operations/{PAYMENT}/void",
        {"code": "hold_clearing", "message": "being cleared"},
        409,
    )
    await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)  # fail is not mocked
    assert void.times_called == 1
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 0


async def test_watchdog_leaves_a_payment_the_clear_claimed(pe: Env) -> None:
    pe.order(**CLEARING)
    await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)  # nothing else is mocked


async def test_watchdog_leaves_a_payment_whose_hold_exists(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.invoice(invoice_body([operation_body(PAYMENT, status="pending")]))
    await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)  # fail is not mocked


@pytest.mark.parametrize(
    "order",
    [
        {"status": "WAITING"},
        {"status": "PAYED", "payment_id": PAYMENT},
        {"status": "PAYMENT_IN_PROGRESS", "payment_id": "another"},
    ],
)
async def test_watchdog_does_nothing_once_the_payment_moved_on(
    pe: Env, order: dict[str, Any]
) -> None:
    pe.order(**order)
    await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)


async def test_watchdog_raises_while_transactions_is_down(pe: Env) -> None:
    pe.order(**IN_PROGRESS)
    pe.mock.handler(f"/v1/invoices/{ORDER_ID}", "GET")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await pe.handlers.hold_watchdog(WATCHDOG_PAYLOAD)


# --- wiring -----------------------------------------------------------------------------------


async def test_the_app_registers_the_consumers(pe: Env) -> None:
    for spec in (tasks.TRANSACTION_CALLBACK, tasks.HOLD_WATCHDOG, tasks.ACCRUE_CASHBACK):
        task = pe.queue.app.tasks[spec.name]
        assert task.queue == tasks.QUEUE


def no_overdue_shares(mock: MockServer) -> Any:
    return mock.json_handler("/v1/orders/shares/overdue", {"shares": []}, method="GET")


def no_stuck_payments(mock: MockServer) -> Any:
    """eda's answer to the sweep that runs beside the queue worker: nothing overdue."""
    no_overdue_shares(mock)
    return mock.json_handler("/v1/orders", {"orders": []}, method="GET")


async def test_the_in_app_worker_runs_a_callback_put_on_the_queue(pe_factory: Any) -> None:
    async with pe_factory(queue_workers=True) as env:
        no_stuck_payments(env.mock)
        env.order(**IN_PROGRESS)
        env.eda_write("claim-clear", order_body(**CLEARING))
        ops = env.operations(operation_body("p1.clear", "clear", target=PAYMENT))
        await env.queue.put(tasks.TRANSACTION_CALLBACK, task_id="cb-1", payload=callback())
        await eventually(lambda: bool(ops.times_called))
        assert ops.times_called == 1


async def test_the_worker_passes_the_attempt_number(pe_factory: Any) -> None:
    async with pe_factory(queue_workers=True, payments={"cashback_max_attempts": 1}) as env:
        no_stuck_payments(env.mock)
        env.order(**PAID)
        env.invoice({"code": "x", "message": "down"}, 500)
        await env.queue.put(
            tasks.ACCRUE_CASHBACK, task_id="cashback:x", payload={"order_id": ORDER_ID}
        )
        await eventually(lambda: bool(env.metric("qrpay_cashback_problems_total")))
        assert env.metric("qrpay_cashback_problems_total") == 1


async def test_queue_gauges(pe: Env) -> None:
    await pe.queue.put(tasks.HOLD_WATCHDOG, task_id="w", payload=WATCHDOG_PAYLOAD)
    await pe.service.refresh_queue_gauges()
    assert pe.metric("qrpay_queue_depth", queue=tasks.QUEUE) == 1
    assert pe.metric("qrpay_queue_failed_tasks", queue=tasks.QUEUE) == 0


async def test_build_worker(tmp_path: Any, mockserver: MockServer) -> None:
    from tests.support.component.payments_eda import config_for

    queue = TaskQueue()
    ctx = make_context("payments-eda", tmp_path, config=config_for(mockserver), queue=queue)
    queues, resources = build_worker(ctx)
    assert queues == [tasks.QUEUE]
    sweep = no_stuck_payments(mockserver)
    assert tasks.TRANSACTION_CALLBACK.name in queue.app.tasks
    mockserver.json_handler(f"/v1/orders/{ORDER_ID}", order_body(**IN_PROGRESS), method="GET")
    mockserver.json_handler(f"/v1/orders/{ORDER_ID}/payment/claim-clear", order_body(**CLEARING))
    ops = mockserver.json_handler(
        f"/v1/invoices/{ORDER_ID}/operations",
        operation_body("p1.clear", "clear", target=PAYMENT),
    )
    async with resources:
        worker = asyncio.create_task(queue.run_worker(queues))
        await queue.put(tasks.TRANSACTION_CALLBACK, task_id="cb-1", payload=callback())
        await eventually(lambda: bool(ops.times_called))
        await eventually(lambda: bool(sweep.times_called))  # the worker's resources sweep too
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    await queue.close()
    assert ops.times_called == 1
