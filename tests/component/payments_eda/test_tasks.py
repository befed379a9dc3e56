"""Queue consumers called directly with their payloads (SPEC 4.4), the sweep, and the
queue wiring. eda is ``FakeEda`` where a test moves a payment, a fixed ledger where it only
reads one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from qrpay.eda.schemas import PaymentState
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
    ledger_body,
    operation_body,
    payment_body,
    to_check,
)
from tests.support.mockserver import (
    MockServer,
    drop_connection,
    error_response,
)
from tests.support.services import make_context
from tests.support.waiting import eventually

CASHBACK = "payments_eda.accrue_cashback"
CLEAR = {"op_id": f"{PAYMENT}.clear", "kind": "clear", "target": PAYMENT}
UNHOLD = {"op_id": f"{PAYMENT}.unhold", "kind": "unhold", "target": PAYMENT}
MISSING = {"code": "invoice_not_found", "message": "no"}


# --- hold -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["holding", "rolling_back", "released"])
async def test_a_holds_own_success_is_released(pe: Env, state: str) -> None:
    """Every hold is captured since issue 9 (its success comes as its clear's callback): a
    hold's own success is an uncaptured one from before, which nothing may clear now. It
    is released; the release's callback gives the payment back."""
    eda = pe.eda(payment_body(state=state))
    ops = pe.operations(operation_body(f"{PAYMENT}.unhold", "unhold", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())
    assert ops.next_call()["json"] == {
        "operation_id": f"{PAYMENT}.unhold",
        "kind": "unhold",
        "target": PAYMENT,
    }
    assert pe.mock.requests_by_path[f"/v1/invoices/{PAYMENT}/operations"] == 1
    assert eda.state(PAYMENT) == state  # the unhold's callback moves it
    assert not any(route.times_called for route in eda.moves.values())


async def test_a_holds_own_success_twice_starts_the_same_unhold(pe: Env) -> None:
    pe.eda(payment_body())
    ops = pe.operations(operation_body(f"{PAYMENT}.unhold", "unhold", target=PAYMENT))
    await pe.handlers.transaction_callback(callback())
    await pe.handlers.transaction_callback(callback())
    assert [c["json"]["operation_id"] for c in ops.calls] == [f"{PAYMENT}.unhold"] * 2


@pytest.mark.parametrize("state", ["paid", "clearing"])
async def test_a_holds_success_on_a_payment_its_clear_has_does_nothing(pe: Env, state: str) -> None:
    pe.eda(payment_body(state=state))
    await pe.handlers.transaction_callback(callback())  # transactions is not mocked


async def test_a_callback_for_a_payment_eda_does_not_know_does_nothing(pe: Env) -> None:
    """A whole-bill payment given back before issue 18 left no record: nothing is ours."""
    pe.eda(payment_body("another"))
    await pe.handlers.transaction_callback(callback())  # no move, no operation (unmocked)


async def test_a_callback_for_an_unknown_order_does_nothing(pe: Env) -> None:
    pe.unknown_order("/payments")
    await pe.handlers.transaction_callback(callback())


async def test_hold_failed_gives_the_payment_back_and_counts_a_problem(pe: Env) -> None:
    eda = pe.eda(payment_body())
    await pe.handlers.transaction_callback(callback(status="failed"))
    assert eda.moves["fail"].next_call()["json"] == {"payment_id": PAYMENT}
    assert eda.state(PAYMENT) == "released"
    assert pe.metric("qrpay_problem_orders_total", reason="hold_failed") == 1


@pytest.mark.parametrize("code", ["payment_released", "already_paid"])
async def test_hold_failed_ignores_a_payment_that_moved_on(pe: Env, code: str) -> None:
    pe.ledger(payment_body())
    fail = pe.eda_write("fail", {"code": code, "message": "moved on"}, 409)
    await pe.handlers.transaction_callback(callback(status="failed"))
    assert fail.times_called == 1


async def test_hold_failed_twice_fails_once(pe: Env) -> None:
    eda = pe.eda(payment_body())
    await pe.handlers.transaction_callback(callback(status="failed"))
    await pe.handlers.transaction_callback(callback(status="failed"))
    assert eda.moves["fail"].times_called == 1  # the second reads it given back
    assert pe.metric("qrpay_problem_orders_total", reason="hold_failed") == 1


# --- clear ------------------------------------------------------------------------------------


async def test_clear_succeeded_marks_paid_and_queues_cashback(pe: Env) -> None:
    eda = pe.eda(payment_body())
    await pe.handlers.transaction_callback(callback(**CLEAR))
    assert eda.moves["complete"].next_call()["json"] == {"payment_id": PAYMENT}
    assert eda.state(PAYMENT) == "paid"
    [job] = pe.jobs(CASHBACK)  # the callback names no user: the task reads the invoice's
    assert job["queueing_lock"] == f"cashback:{ORDER_ID}.{PAYMENT}"
    assert job["args"] == {"order_id": ORDER_ID, "payment_id": PAYMENT}
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 1


# What payments-eda asks cashback for on a paid 1000 RUB bill at rest-1 (30%).
ACCRUAL_REQUEST = {"user_id": USER, "amount": "300", "currency": "RUB", "source": "rest-1"}


def accrual_route(pe: Env, key: str = f"{ORDER_ID}.{PAYMENT}", status: int = 200) -> Any:
    """cashback's PUT /v1/accruals/{key}: the accrual made, or an error ``status``."""
    body: Any = {
        "accrual": {
            "order_id": key,
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
    return pe.mock.json_handler(f"/v1/accruals/{key}", body, status, method="PUT")


@pytest.mark.parametrize("state", ["holding", "rolling_back", "clearing"])
async def test_a_captured_clear_completes_the_payment_and_accrues_in_the_same_task(
    pe: Env, state: str
) -> None:
    """One task per payment: the clear's callback completes the payment (from whichever
    live state: a rollback that began yielded to the capture; ``clearing`` is a payment an
    owner-started clear claimed before issue 18) and accrues the cashback right away."""
    eda = pe.eda(payment_body(state=state))
    accrue = accrual_route(pe)
    await pe.handlers.transaction_callback({**callback(**CLEAR), "user_id": USER})
    assert eda.moves["complete"].next_call()["json"] == {"payment_id": PAYMENT}
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST
    assert pe.jobs(CASHBACK) == []  # no task of its own


async def test_an_accrual_that_fails_in_the_callback_gets_its_own_task(pe: Env) -> None:
    pe.eda(payment_body())
    accrue = accrual_route(pe, status=503)
    await pe.handlers.transaction_callback({**callback(**CLEAR), "user_id": USER})
    assert accrue.times_called >= 1
    [job] = pe.jobs(CASHBACK)  # retried there, given up and counted after its tries
    assert job["args"] == {"order_id": ORDER_ID, "payment_id": PAYMENT}
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 1


async def test_clear_succeeded_duplicate_queues_cashback_once(pe: Env) -> None:
    pe.eda(payment_body(state="paid"))
    await pe.handlers.transaction_callback(callback(**CLEAR))
    await pe.handlers.transaction_callback(callback(**CLEAR))
    assert len(pe.jobs(CASHBACK)) == 1
    assert pe.metric("qrpay_orders_paid_by_qr_total", client_id="rest-1") == 0


async def test_out_of_order_clear_before_hold(pe: Env) -> None:
    """The clear's callback overtakes the hold's: the payment is paid once, nothing else."""
    eda = pe.eda(payment_body())
    await pe.handlers.transaction_callback(callback(**CLEAR))
    await pe.handlers.transaction_callback(callback())  # hold succeeded, late: nothing to do
    assert eda.moves["complete"].times_called == 1
    assert len(pe.jobs(CASHBACK)) == 1


async def test_a_clear_refused_for_good_is_never_turned_into_a_release(pe: Env) -> None:
    """Issue 9 (2): the money was held for a captured clear; releasing it is not ours."""
    eda = pe.eda(payment_body())
    await pe.handlers.transaction_callback(callback(**CLEAR, status="failed"))
    assert pe.metric("qrpay_problem_orders_total", reason="clear_failed") == 1
    assert pe.jobs(CASHBACK) == []
    assert eda.state(PAYMENT) == "holding"  # and no operation (unmocked)


async def test_clear_succeeded_raises_when_eda_is_down(pe: Env) -> None:
    pe.ledger(payment_body())
    pe.mock.handler(f"/v1/orders/{ORDER_ID}/payments/complete")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await pe.handlers.transaction_callback(callback(**CLEAR))
    assert pe.jobs(CASHBACK) == []


# --- unhold -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["holding", "rolling_back"])
async def test_unhold_succeeded_gives_the_payment_back(pe: Env, state: str) -> None:
    eda = pe.eda(payment_body(state=state))
    await pe.handlers.transaction_callback(callback(**UNHOLD))
    assert eda.moves["fail"].times_called == 1
    assert eda.state(PAYMENT) == "released"


async def test_unhold_succeeded_on_a_payment_given_back_does_nothing(pe: Env) -> None:
    eda = pe.eda(payment_body(state="released"))
    await pe.handlers.transaction_callback(callback(**UNHOLD))
    assert not any(route.times_called for route in eda.moves.values())


async def test_unhold_failed_raises_for_a_retry(pe: Env) -> None:
    pe.eda(payment_body(state="released"))
    with pytest.raises(QrpayError):
        await pe.handlers.transaction_callback(callback(**UNHOLD, status="failed"))
    assert pe.metric("qrpay_problem_orders_total", reason="unhold_failed") == 1


@pytest.mark.parametrize("down", ["eda", "transactions"])
async def test_a_failing_step_raises_for_a_retry(pe: Env, down: str) -> None:
    if down == "eda":
        pe.mock.handler(f"/v1/orders/{ORDER_ID}/payments", "GET")(drop_connection)
    else:
        pe.eda(payment_body())
        pe.mock.handler("/v1/invoices/{invoice}/operations")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await pe.handlers.transaction_callback(callback())


async def test_a_callback_with_a_field_added_later_is_still_understood(pe: Env) -> None:
    pe.eda(payment_body(state="paid"))
    await pe.handlers.transaction_callback({**callback(), "added_later": 1})


# --- queued before issue 18 ------------------------------------------------------------------


async def test_a_legacy_whole_bill_callback_completes_it(pe: Env) -> None:
    """A callback queued for a whole-bill payment made before issue 18: its invoice is the
    order's id. eda's migration kept the payment; the callback completes it and accrues
    under the order's id, the key its accrual always had."""
    eda = pe.eda(payment_body(state="holding", invoice_id=ORDER_ID))
    accrue = accrual_route(pe, key=ORDER_ID)
    await pe.handlers.transaction_callback(
        {**callback(**CLEAR, invoice_id=ORDER_ID), "user_id": USER}
    )
    assert eda.state(PAYMENT) == "paid"
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST


async def test_a_legacy_uncaptured_hold_is_released_on_the_orders_invoice(pe: Env) -> None:
    pe.eda(payment_body(state="holding", invoice_id=ORDER_ID))
    ops = pe.operations(operation_body(f"{PAYMENT}.unhold", "unhold", target=PAYMENT))
    await pe.handlers.transaction_callback(callback(invoice_id=ORDER_ID))
    assert ops.next_call()["json"]["kind"] == "unhold"
    assert pe.mock.requests_by_path[f"/v1/invoices/{ORDER_ID}/operations"] == 1


async def test_a_legacy_accrual_task_of_a_whole_bill_accrues_under_the_order(pe: Env) -> None:
    pe.ledger(payment_body(state="paid", invoice_id=ORDER_ID))
    pe.invoice(invoice_body(invoice_id=ORDER_ID), invoice_id=ORDER_ID)
    accrue = accrual_route(pe, key=ORDER_ID)
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID}, 1)
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST


async def test_a_legacy_accrual_task_of_a_share_accrues_under_the_share(pe: Env) -> None:
    pe.ledger(payment_body("s1", "paid"))
    pe.invoice(invoice_body(invoice_id="s1"), invoice_id="s1")
    accrue = accrual_route(pe, key=f"{ORDER_ID}.s1")
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "share_id": "s1"}, 1)
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST


# --- cashback ---------------------------------------------------------------------------------


async def test_cashback_is_accrued_for_a_paid_payment(pe: Env) -> None:
    pe.ledger(payment_body(state="paid"))
    invoice = pe.invoice(invoice_body())
    accrue = accrual_route(pe)
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "payment_id": PAYMENT}, 1)
    assert invoice.times_called == 1  # the guest, from the payment's invoice
    assert accrue.next_call()["json"] == ACCRUAL_REQUEST


async def test_the_cap_is_shared_in_the_order_eda_numbered_the_payments(pe: Env) -> None:
    """Issue 18: the cashback cap (3000 at rest-1, 30%) is shared in the order eda numbered
    the clears (``paid_seq``), never by timestamps of different hosts: here ``b`` cleared
    first though its row was written last."""
    pe.ledger(
        payment_body("a", "paid", "6000.00", paid_seq=2, minute=1, updated_minute=2),
        payment_body("b", "paid", "8000.00", paid_seq=1, minute=3, updated_minute=9),
        total="14000.00",
    )
    earned = {}
    for payment_id in ("a", "b"):
        pe.invoice(invoice_body(invoice_id=payment_id), invoice_id=payment_id)
        route = accrual_route(pe, key=f"{ORDER_ID}.{payment_id}")
        await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "payment_id": payment_id}, 1)
        earned[payment_id] = route.next_call()["json"]["amount"]
    # b first: 30% of 8000 = 2400; a then gets what is left of the cap, 600 (not 1800).
    assert earned == {"b": "2400", "a": "600"}


async def test_zero_cashback_accrues_nothing(pe: Env) -> None:
    pe.ledger(payment_body(state="paid", amount="2.00"), total="2.00")  # 30% of 2 rounds to 0
    pe.invoice(invoice_body())
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "payment_id": PAYMENT}, 1)


@pytest.mark.parametrize("state", ["holding", "released"])
async def test_no_cashback_for_an_unpaid_payment(pe: Env, state: str) -> None:
    pe.ledger(payment_body(state=state))
    await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "payment_id": PAYMENT}, 1)


async def test_cashback_failing_is_retried_then_recorded_as_a_problem(
    pe_factory: Callable[..., Any],
) -> None:
    async with pe_factory(payments={"cashback_max_attempts": 5}) as pe:
        pe.ledger(payment_body(state="paid"))
        pe.invoice(invoice_body())
        accrue = pe.mock.handler(f"/v1/accruals/{ORDER_ID}.{PAYMENT}", "PUT")(
            lambda _r: error_response(503, "accruals_disabled")
        )
        payload = {"order_id": ORDER_ID, "payment_id": PAYMENT}
        for attempt in range(1, 5):
            with pytest.raises(DependencyUnavailable):
                await pe.handlers.accrue_cashback(payload, attempt)
        assert pe.metric("qrpay_cashback_problems_total") == 0
        await pe.handlers.accrue_cashback(payload, 5)  # the last try: no raise
        assert pe.metric("qrpay_cashback_problems_total") == 1
        assert accrue.times_called >= 5


async def test_a_cashback_problem_does_not_undo_the_payment(
    pe_factory: Callable[..., Any],
) -> None:
    async with pe_factory(payments={"cashback_max_attempts": 5}) as pe:
        pe.ledger(payment_body(state="paid"))
        pe.invoice({"code": "x", "message": "down"}, 500)
        await pe.handlers.accrue_cashback({"order_id": ORDER_ID, "payment_id": PAYMENT}, 5)
        # Only reads happened: no move in eda, no unhold asked for (unmocked).
        assert pe.metric("qrpay_cashback_problems_total") == 1


# --- the sweep ----------------------------------------------------------------------------------


async def check(pe: Env, state: str = "holding") -> None:
    await pe.service.check_payment(ORDER_ID, PAYMENT, PAYMENT, PaymentState(state))


@pytest.mark.parametrize("invoice", [404, [], [operation_body("p0", status="failed")]])
async def test_a_payment_that_never_got_its_hold_is_rolled_back(pe: Env, invoice: Any) -> None:
    eda = pe.eda(payment_body())
    if invoice == 404:
        pe.invoice(MISSING, 404)
        void = pe.void(MISSING, 404)
    else:
        pe.invoice(invoice_body(invoice))
        void = pe.void({"operation_id": PAYMENT, "outcome": "voided"})
    await check(pe)
    # Claimed in eda, voided in transactions (a late hold then finds a canceled record),
    # and only then given back.
    assert eda.moves["begin-rollback"].next_call()["json"] == {"payment_id": PAYMENT}
    assert void.next_call()["json"] == {"release_operation_id": f"{PAYMENT}.unhold"}
    assert eda.moves["fail"].next_call()["json"] == {"payment_id": PAYMENT}
    assert eda.state(PAYMENT) == "released"
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 1


async def test_the_sweep_checks_overdue_and_rolling_back_payments(pe: Env) -> None:
    """No task per payment: the sweep asks eda for the payments under way past
    hold_watchdog_seconds and those being rolled back, and checks each once."""
    eda = pe.eda(payment_body())
    listing = pe.overdue([to_check()])
    pe.invoice(MISSING, 404)
    pe.void(MISSING, 404)
    assert await pe.service.sweep_stuck_payments() == 1
    assert eda.state(PAYMENT) == "released"
    cutoff = (pe.ctx.clock.now() - timedelta(seconds=30)).isoformat()
    assert [call["query"] for call in listing.calls] == [{"updated_before": cutoff, "limit": "100"}]
    assert pe.metric("qrpay_payments_overdue") == 1


async def test_the_sweep_pages_through_every_stuck_payment(pe: Env) -> None:
    """Issue 18: more stuck payments than a page holds; none is starved."""
    ids = [f"p{n}" for n in range(5)]
    eda = pe.eda(*(payment_body(i, amount="200.00", minute=n) for n, i in enumerate(ids)))
    pages = [[to_check(i) for i in ids[:2]], [to_check(i) for i in ids[2:4]], [to_check(ids[4])]]
    listing = pe.overdue(*pages)
    pe.mock.json_handler("/v1/invoices/{invoice}", MISSING, 404, method="GET")
    pe.mock.json_handler("/v1/invoices/{invoice}/operations/{hold}/void", MISSING, 404)
    assert await pe.service.sweep_stuck_payments(page_size=2) == 5
    assert {i: eda.state(i) for i in ids} == dict.fromkeys(ids, "released")
    assert [call["query"].get("after") for call in listing.calls] == [None, "1", "2"]
    assert {call["query"]["limit"] for call in listing.calls} == {"2"}
    assert pe.metric("qrpay_payments_overdue") == 5


async def test_a_payment_the_sweep_cannot_check_now_is_left_for_the_next(pe: Env) -> None:
    eda = pe.eda(payment_body(), payment_body("p2", amount="0.01", minute=1))
    pe.overdue([to_check(), to_check("p2")])
    pe.invoice({"code": "x", "message": "down"}, 500)
    pe.invoice(MISSING, 404, invoice_id="p2")
    pe.void(MISSING, 404, hold="p2")
    assert await pe.service.sweep_stuck_payments() == 2  # logged, not raised
    assert eda.state(PAYMENT) == "holding"
    assert eda.state("p2") == "released"  # the next one was still checked


async def test_the_sweep_waits_while_the_voided_hold_is_at_the_gateway(pe: Env) -> None:
    eda = pe.eda(payment_body(state="rolling_back"))
    pe.void({"operation_id": PAYMENT, "outcome": "in_flight"})
    await check(pe, "rolling_back")
    assert eda.moves["fail"].times_called == 0  # the next sweep looks again
    assert eda.state(PAYMENT) == "rolling_back"


async def test_the_sweep_yields_to_a_captured_clear(pe: Env) -> None:
    """The hold succeeded and its capture is recorded: the void is refused, the payment
    is not given back and nothing is counted; the clear's callback completes it."""
    eda = pe.eda(payment_body())
    pe.invoice(invoice_body([operation_body(PAYMENT, status="failed")]))  # read as not under way
    void = pe.void({"code": "hold_clearing", "message": "being cleared"}, 409)
    await check(pe)
    assert void.times_called == 1
    assert eda.moves["fail"].times_called == 0
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 0


async def test_the_sweep_leaves_a_payment_whose_hold_exists(pe: Env) -> None:
    eda = pe.eda(payment_body())
    pe.invoice(invoice_body([operation_body(PAYMENT, status="pending")]))
    await check(pe)
    assert eda.moves["begin-rollback"].times_called == 0


@pytest.mark.parametrize("state", ["clearing", "paid", "released"])
async def test_the_sweep_does_nothing_once_the_payment_moved_on(pe: Env, state: str) -> None:
    eda = pe.eda(payment_body(state=state))
    await check(pe, state)  # the rollback's claim is refused: no void (unmocked), no fail
    assert eda.state(PAYMENT) == state
    assert eda.moves["fail"].times_called == 0


async def test_the_sweep_check_raises_while_transactions_is_down(pe: Env) -> None:
    pe.eda(payment_body())
    pe.mock.handler(f"/v1/invoices/{PAYMENT}", "GET")(drop_connection)
    with pytest.raises(DependencyUnavailable):
        await check(pe)


# --- wiring -----------------------------------------------------------------------------------


async def test_the_app_registers_the_consumers(pe: Env) -> None:
    for spec in (tasks.TRANSACTION_CALLBACK, tasks.ACCRUE_CASHBACK):
        task = pe.queue.app.tasks[spec.name]
        assert task.queue == tasks.QUEUE
    # Nothing puts a hold watchdog task since the sweep (issue 9): its consumer is gone.
    assert "payments_eda.hold_watchdog" not in pe.queue.app.tasks


def no_stuck_payments(mock: MockServer) -> Any:
    """eda's answer to the sweep that runs beside the queue worker: nothing overdue."""
    return mock.json_handler(
        "/v1/orders/payments/overdue", {"payments": [], "next": None}, method="GET"
    )


async def test_the_in_app_worker_runs_a_callback_put_on_the_queue(pe_factory: Any) -> None:
    async with pe_factory(queue_workers=True) as env:
        no_stuck_payments(env.mock)
        eda = env.eda(payment_body())
        complete = eda.moves["complete"]
        await env.queue.put(tasks.TRANSACTION_CALLBACK, task_id="cb-1", payload=callback(**CLEAR))
        await eventually(lambda: bool(complete.times_called))
        assert complete.times_called == 1


async def test_the_worker_passes_the_attempt_number(pe_factory: Any) -> None:
    async with pe_factory(queue_workers=True, payments={"cashback_max_attempts": 1}) as env:
        no_stuck_payments(env.mock)
        env.ledger(payment_body(state="paid"))
        env.invoice({"code": "x", "message": "down"}, 500)
        await env.queue.put(
            tasks.ACCRUE_CASHBACK,
            task_id="cashback:x",
            payload={"order_id": ORDER_ID, "payment_id": PAYMENT},
        )
        await eventually(lambda: bool(env.metric("qrpay_cashback_problems_total")))
        assert env.metric("qrpay_cashback_problems_total") == 1


async def test_queue_gauges(pe: Env) -> None:
    payload = {"order_id": ORDER_ID, "payment_id": PAYMENT}
    await pe.queue.put(tasks.ACCRUE_CASHBACK, task_id="c", payload=payload)
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
    mockserver.json_handler(
        f"/v1/orders/{ORDER_ID}/payments", ledger_body(payment_body()), method="GET"
    )
    ops = mockserver.json_handler(
        f"/v1/invoices/{PAYMENT}/operations",
        operation_body(f"{PAYMENT}.unhold", "unhold", target=PAYMENT),
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
