"""payments-eda's queue consumers; the task names are ``schemas.Task`` (the service puts by name).

- ``payments_eda.transaction_callback``: put by transactions when an operation of an
  invoice we own finishes; payload = ``transactions.schemas.TransactionCallback``.
- ``payments_eda.send_refund``: behind every refund request until each of its parts is
  at transactions (task id ``refund:<order>:<refund id>``); payload ``RefundRequest``.
- ``payments_eda.reverse_cashback``: a refund part's cashback reversal that failed inline
  (task id ``reversal:<part id>``); payload ``{order_id, part_id}``.
- ``payments_eda.accrue_cashback``: put when the accrual in the clear's callback failed
  (task id ``cashback:<accrual key>``); payload ``{order_id, payment_id}`` (``{order_id}``
  for a whole-bill payment and ``{order_id, share_id}`` for a share from before issue 18).

A handler raises to have the queue retry it with backoff; every one is idempotent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qrpay.kernel.queue import TaskQueue
from qrpay.payments_eda.config import PaymentsConfig
from qrpay.payments_eda.schemas import TASK_QUEUE, Task
from qrpay.payments_eda.service import PaymentsService, task_spec
from qrpay.transactions.schemas import TransactionCallback

QUEUE = TASK_QUEUE
TRANSACTION_CALLBACK = task_spec(Task.TRANSACTION_CALLBACK)
ACCRUE_CASHBACK = task_spec(Task.ACCRUE_CASHBACK)
REVERSE_CASHBACK = task_spec(Task.REVERSE_CASHBACK)
SEND_REFUND = task_spec(Task.SEND_REFUND)


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

    async def accrue_cashback(self, payload: dict[str, Any], attempt: int) -> None:
        payment = payload.get("payment_id", payload.get("share_id"))
        await self.service.accrue_cashback(
            str(payload["order_id"]), attempt, None if payment is None else str(payment)
        )

    async def reverse_cashback(self, payload: dict[str, Any]) -> None:
        await self.service.refunds.reverse_cashback(
            str(payload["order_id"]), str(payload["part_id"])
        )

    async def send_refund(self, payload: dict[str, Any]) -> None:
        await self.service.refunds.send_refund_task(payload)


def register(queue: TaskQueue, handlers: Handlers, config: PaymentsConfig) -> None:
    retried_as_callbacks = (
        (TRANSACTION_CALLBACK, handlers.transaction_callback),
        (REVERSE_CASHBACK, handlers.reverse_cashback),
        (SEND_REFUND, handlers.send_refund),
    )
    for spec, handler in retried_as_callbacks:
        queue.register(replace(spec, max_attempts=config.callback_max_attempts), handler)
    # procrastinate allows ``max_attempts`` retries after the first run, so the handler's
    # last try (number ``cashback_max_attempts``) always runs and records the problem.
    queue.register_with_attempt(
        replace(ACCRUE_CASHBACK, max_attempts=config.cashback_max_attempts),
        handlers.accrue_cashback,
    )
