"""The support tools' routes of payments-eda (issue 19) on the in-memory queue: an order's
tasks, the retry of a failed one, the problem list; to the support tools only."""

from datetime import timedelta
from typing import Any

from qrpay.payments_eda import tasks
from tests.support.component.payments_eda import ORDER_ID, Env, to_check
from tests.support.support_tools import task as queued
from tests.support.tickets import GuardedCall

SUPPORT = "/v1/support"


async def task(pe: Env, payment_id: str, **kw: Any) -> int:
    return await queued(pe.queue, payment_id, **kw)


def call(pe: Env, method: str, path: str, route: str, **kw: Any) -> GuardedCall:
    return GuardedCall("payments-eda", pe.client, method, path, route, **kw)


async def as_support(pe: Env, method: str, path: str, **kw: Any) -> Any:
    answer = await call(pe, method, path, path, **kw).as_caller("support")
    return answer


async def test_an_orders_tasks_newest_first(pe: Env) -> None:
    failed = await task(pe, "p1", status="failed", minute=1)
    waiting = await task(pe, "p2", minute=2)
    await task(pe, "p3", order_id="another-order", minute=3)
    answer = await as_support(pe, "GET", f"{SUPPORT}/tasks", params={"order_id": ORDER_ID})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_id"] == ORDER_ID
    assert [t["job_id"] for t in body["tasks"]] == [waiting, failed]
    first_failed = body["tasks"][1]
    assert first_failed == {
        "job_id": failed,
        "task": tasks.ACCRUE_CASHBACK.name,
        "status": "failed",
        "attempts": 3,
        "task_id": f"cashback:{ORDER_ID}:p1",
        "order_id": ORDER_ID,
        "payload": {"order_id": ORDER_ID, "payment_id": "p1"},
        "scheduled_at": None,
        "started_at": "2026-01-01T12:00:59Z",
        "last_event": "failed",
        "last_event_at": "2026-01-01T12:01:00Z",
    }
    none = await as_support(pe, "GET", f"{SUPPORT}/tasks", params={"order_id": "no-such"})
    assert none.json() == {"order_id": "no-such", "tasks": []}


async def test_a_failed_task_is_retried_once_and_only_a_failed_one(pe: Env) -> None:
    failed = await task(pe, "p1", status="failed")
    waiting = await task(pe, "p2")
    retried = await as_support(pe, "POST", f"{SUPPORT}/tasks/{failed}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "todo"
    assert retried.json()["attempts"] == 4  # procrastinate counts the retry as a try
    assert retried.json()["last_event"] == "deferred_for_retry"
    again = await as_support(pe, "POST", f"{SUPPORT}/tasks/{failed}/retry")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "task_not_failed"
    todo = await as_support(pe, "POST", f"{SUPPORT}/tasks/{waiting}/retry")
    assert (todo.status_code, todo.json()["code"]) == (409, "task_not_failed")
    missing = await as_support(pe, "POST", f"{SUPPORT}/tasks/999999/retry")
    assert (missing.status_code, missing.json()["code"]) == (404, "task_not_found")


async def test_a_failed_task_whose_task_id_is_queued_again_is_not_retried(pe: Env) -> None:
    failed = await task(pe, "p1", status="failed")
    # The producer put the same task again (same task id): that copy will do the work.
    assert await pe.queue.put(
        tasks.ACCRUE_CASHBACK,
        task_id=f"cashback:{ORDER_ID}:p1",
        payload={"order_id": ORDER_ID, "payment_id": "p1"},
    )
    answer = await as_support(pe, "POST", f"{SUPPORT}/tasks/{failed}/retry")
    assert (answer.status_code, answer.json()["code"]) == (409, "task_already_queued")
    assert pe.jobs()[0]["status"] == "failed"


async def test_problems_payments_under_way_first_then_tasks_newest_first(pe: Env) -> None:
    listing = pe.overdue([to_check("p1"), to_check("p2", "rolling_back")])
    refused = {
        "order_id": ORDER_ID, "part_id": "r1.1", "refund_id": "r1", "payment_id": "p7",
        "amount": "10.00", "tip": "0.00", "state": "failed",
        "updated_at": "2000-01-01T00:00:00Z",
    }  # fmt: skip
    refunds = pe.mock.json_handler(
        "/v1/orders/refunds/problems", {"refunds": [refused]}, method="GET"
    )
    old_failure = await task(pe, "p3", status="failed", minute=1)
    retrying = await task(pe, "p4", minute=3, attempts=2)
    new_failure = await task(pe, "p5", status="failed", minute=2)
    await task(pe, "p6", minute=4)  # waiting for its first try: no problem
    answer = await as_support(pe, "GET", f"{SUPPORT}/problems")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unavailable"] == {}
    assert [(p["kind"], p["payment_id"], p["state"]) for p in body["problems"]] == [
        ("payment_overdue", "p1", "holding"),
        ("payment_rolling_back", "p2", "rolling_back"),
        ("task_retrying", "p4", "todo"),
        ("task_failed", "p5", "failed"),
        ("task_failed", "p3", "failed"),
        ("refund_failed", "p7", "failed"),
    ]
    assert body["problems"][-1]["refund_part_id"] == "r1.1"
    assert [p["task"]["job_id"] for p in body["problems"][2:-1]] == [
        retrying,
        new_failure,
        old_failure,
    ]
    assert body["problems"][0]["task"] is None
    cutoff = (pe.ctx.clock.now() - timedelta(seconds=30)).isoformat()
    assert listing.next_call()["query"]["updated_before"] == cutoff
    assert refunds.next_call()["query"]["refunding_before"] == cutoff


async def test_problems_are_listed_while_eda_is_down(pe: Env) -> None:
    pe.mock.error_handler(
        "/v1/orders/payments/overdue", 503, "database_unavailable", "down", method="GET"
    )
    failed = await task(pe, "p1", status="failed")
    answer = await as_support(pe, "GET", f"{SUPPORT}/problems")
    assert answer.status_code == 200, answer.text
    assert answer.json()["unavailable"] == {"eda": "eda_unavailable"}
    assert [p["task"]["job_id"] for p in answer.json()["problems"]] == [failed]


async def test_the_support_routes_are_the_support_tools_only(pe: Env) -> None:
    pe.overdue([])
    pe.mock.json_handler("/v1/orders/refunds/problems", {"refunds": []}, method="GET")
    failed = await task(pe, "p1", status="failed")
    calls = [
        call(
            pe,
            "GET",
            f"{SUPPORT}/tasks",
            f"{SUPPORT}/tasks",
            params={"order_id": ORDER_ID},
        ),
        call(pe, "GET", f"{SUPPORT}/problems", f"{SUPPORT}/problems"),
        call(pe, "POST", f"{SUPPORT}/tasks/{failed}/retry", f"{SUPPORT}/tasks/{{job_id}}/retry"),
    ]
    for guarded in calls:
        await guarded.assert_refused("support", wrong="api-proxy")
        for other in ("iiko-integration", "eda", "transactions", "qrpay-tools"):
            assert (await guarded.as_caller(other)).status_code == 403, (guarded.path, other)
    assert pe.jobs()[0]["status"] == "failed"  # nothing refused retried it
    for guarded in calls:
        assert (await guarded.as_caller("support")).status_code == 200, guarded.path
