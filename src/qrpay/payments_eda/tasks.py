"""payments-eda's queue consumers; the task names are ``schemas.Task`` (the service puts by name).

- ``payments_eda.transaction_callback``: put by transactions when an operation of an
  invoice we own finishes; payload = ``transactions.schemas.TransactionCallback``.
- ``payments_eda.hold_watchdog``: payload ``{order_id, payment_id}``; no longer put (the
  periodic sweep, ``PaymentsService.sweep_stuck_payments``, does its work without a task
  per payment) but still consumed: tasks put by an older version finish after an upgrade.
- ``payments_eda.accrue_cashback``: put when the accrual in the clear's callback failed
  (task id ``cashback:<order_id>``); payload ``{order_id}``.

A handler raises to have the queue retry it with backoff; every one is idempotent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qrpay.kernel.config import PaymentsConfig
from qrpay.kernel.queue import TaskQueue
from qrpay.payments_eda.schemas import TASK_QUEUE, Task
from qrpay.payments_eda.service import PaymentsService, task_spec
from qrpay.transactions.schemas import TransactionCallback

QUEUE = TASK_QUEUE
TRANSACTION_CALLBACK = task_spec(Task.TRANSACTION_CALLBACK)
HOLD_WATCHDOG = task_spec(Task.HOLD_WATCHDOG)
ACCRUE_CASHBACK = task_spec(Task.ACCRUE_CASHBACK)


def _known_fields(payload: dict[str, Any]) -> dict[str, Any]:
    # A field transactions adds later must not make every callback fail.
    return {k: v for k, v in payload.items() if k in TransactionCallback.model_fields}


class Handlers:
    """The consumers, callable directly with a payload (that is how they are tested)."""

    def __init__(self, service: PaymentsService) -> None:
        self.service = service

    async def transaction_callback(self, payload: dict[str, Any]) -> None:
        callback = TransactionCallback.model_validate(_known_fields(payload))
        await self.service.on_transaction(callback)

    async def hold_watchdog(self, payload: dict[str, Any]) -> None:
        await self.service.hold_watchdog(str(payload["order_id"]), str(payload["payment_id"]))

    async def accrue_cashback(self, payload: dict[str, Any], attempt: int) -> None:
        share = payload.get("share_id")
        await self.service.accrue_cashback(
            str(payload["order_id"]), attempt, None if share is None else str(share)
        )


def register(queue: TaskQueue, handlers: Handlers, config: PaymentsConfig) -> None:
    queue.register(
        replace(TRANSACTION_CALLBACK, max_attempts=config.callback_max_attempts),
        handlers.transaction_callback,
    )
    queue.register(
        replace(HOLD_WATCHDOG, max_attempts=config.callback_max_attempts),
        handlers.hold_watchdog,
    )
    # procrastinate allows ``max_attempts`` retries after the first run, so the handler's
    # last try (number ``cashback_max_attempts``) always runs and records the problem.
    queue.register_with_attempt(
        replace(ACCRUE_CASHBACK, max_attempts=config.cashback_max_attempts),
        handlers.accrue_cashback,
    )
