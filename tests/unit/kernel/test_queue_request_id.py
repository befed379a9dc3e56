"""One request id follows work through the queue: the id of the request that put a task is
stored with the job and is the current one (in logs, in calls) while the task runs; a task
put by that task keeps it."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from structlog.testing import capture_logs

from qrpay.kernel.queue import REQUEST_ID_ARG, TaskQueue, TaskSpec
from qrpay.kernel.request_context import add_request_id, bound_request_id, current_request_id
from tests.support.waiting import work_until

FIRST = TaskSpec("first", queue="q")
SECOND = TaskSpec("second", queue="q")
log = structlog.get_logger("test")


async def test_a_task_and_the_task_it_puts_run_under_the_request_id_that_put_the_first() -> None:
    queue = TaskQueue()
    seen: dict[str, tuple[dict[str, Any], str | None]] = {}
    second_ran = asyncio.Event()

    async def first(payload: dict[str, Any]) -> None:
        seen["first"] = (payload, current_request_id())
        log.warning("first_ran")  # the tests log at WARNING and above
        await queue.put(SECOND, task_id="second-1", payload={"order_id": payload["order_id"]})

    async def second(payload: dict[str, Any], attempt: int) -> None:
        seen["second"] = (payload, current_request_id())
        second_ran.set()

    queue.register(FIRST, first)
    queue.register_with_attempt(SECOND, second)
    await queue.open()
    with bound_request_id("req-from-the-pay-request"):
        assert await queue.put(FIRST, task_id="first-1", payload={"order_id": "o1"})
    [job] = queue.app.connector.jobs.values()  # type: ignore[attr-defined]
    assert job["args"] == {"order_id": "o1", REQUEST_ID_ARG: "req-from-the-pay-request"}

    with capture_logs(processors=[add_request_id]) as logs:
        await work_until(queue, second_ran, ["q"])

    # The handlers get their payload only; the id is the current one while they run.
    assert seen["first"] == ({"order_id": "o1"}, "req-from-the-pay-request")
    assert seen["second"] == ({"order_id": "o1"}, "req-from-the-pay-request")
    [line] = [entry for entry in logs if entry["event"] == "first_ran"]
    assert line["request_id"] == "req-from-the-pay-request"
    assert current_request_id() is None  # nothing leaks out of the task


async def test_a_task_put_outside_any_request_runs_under_an_id_of_its_own() -> None:
    queue = TaskQueue()
    ran: list[str | None] = []
    done = asyncio.Event()

    async def first(payload: dict[str, Any]) -> None:
        ran.append(current_request_id())
        done.set()

    queue.register(FIRST, first)
    await queue.open()
    await queue.put(FIRST, task_id="first-1", payload={"order_id": "o1"})
    [job] = queue.app.connector.jobs.values()  # type: ignore[attr-defined]
    assert job["args"] == {"order_id": "o1"}
    await work_until(queue, done, ["q"])
    assert ran[0] is not None
    assert len(ran[0]) == 32
