"""transactions' HTTP contract and the payload of the callback task it puts on an owner's queue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from qrpay.kernel.schemas import AmountText, CurrencyCode, WireModel

InvoiceId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
OperationId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
]


class TransactionsCode(StrEnum):
    """The ``code`` of transactions' error answers."""

    INVOICE_NOT_FOUND = "invoice_not_found"
    INVOICE_MISMATCH = "invoice_mismatch"
    HOLD_ACTIVE = "hold_active"
    OPERATION_MISMATCH = "operation_mismatch"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    AMOUNT_REQUIRED = "amount_required"
    AMOUNT_EXCEEDS_HOLD = "amount_exceeds_hold"
    AMOUNT_MISMATCH = "amount_mismatch"
    PAYMENT_METHOD_REQUIRED = "payment_method_required"
    UNEXPECTED_TARGET = "unexpected_target"
    UNEXPECTED_CAPTURE = "unexpected_capture"
    REQUEST_EXPIRED = "request_expired"
    TARGET_REQUIRED = "target_required"
    NOTHING_TO_CLEAR = "nothing_to_clear"
    NOTHING_TO_RELEASE = "nothing_to_release"
    HOLD_CLEARING = "hold_clearing"
    NOTHING_TO_REFUND = "nothing_to_refund"
    REFUND_EXCEEDS_CLEARED = "refund_exceeds_cleared"


class OperationKind(StrEnum):
    HOLD = "hold"
    CLEAR = "clear"
    UNHOLD = "unhold"
    # Gives back money of a cleared hold (a part of what was cleared); ``target``: the hold.
    REFUND = "refund"


class OperationStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Voided before it reached the gateway: it never moves money, and a late request with
    # its id gets this record back instead of a new operation.
    CANCELED = "canceled"


class VoidOutcome(StrEnum):
    """Where a voided hold stands; only VOIDED, FAILED and RELEASED are final."""

    VOIDED = "voided"  # never reached the gateway and never will
    FAILED = "failed"  # the gateway refused it: nothing is held
    RELEASING = "releasing"  # it succeeded; its release is under way
    RELEASED = "released"  # it succeeded and was released
    IN_FLIGHT = "in_flight"  # at the gateway without an answer yet: ask again later

    @property
    def final(self) -> bool:
        return self in (VoidOutcome.VOIDED, VoidOutcome.FAILED, VoidOutcome.RELEASED)


class CallbackTarget(WireModel):
    """Where the invoice's owner wants to hear about its operations (a queue task by name)."""

    queue: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    task: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class InvoiceIn(WireModel):
    owner: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    currency: CurrencyCode
    callback: CallbackTarget


class PaymentMethodRef(WireModel):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class OperationIn(WireModel):
    # The caller's idempotency key, unique within the invoice.
    operation_id: OperationId
    kind: OperationKind
    # hold: the amount and the card. clear/unhold: ``target`` names the hold they act on.
    # refund: ``target`` names the cleared hold, ``amount`` (required) what to give back.
    amount: AmountText | None = None
    payment_method: PaymentMethodRef | None = None
    target: OperationId | None = None
    # hold only: clear it in the same pass as soon as it succeeds (``<hold id>.clear``); the
    # owner then hears of the clear (or of the hold's failure), not of the hold's success.
    capture: bool = False
    # Create the invoice with its first operation (as PUT /v1/invoices/{id} would).
    invoice: InvoiceIn | None = None
    # The caller gives up on the request at this moment (its rollback may run after it): an
    # operation that does not exist yet is refused from then on (409 request_expired), so a
    # request that arrives late never takes money after the caller gave the order back. A
    # repeat of one that exists gets it back whatever the time.
    not_after: datetime | None = None


class VoidIn(WireModel):
    # The id of the unhold to start if the hold succeeded (the owner's own id for it, so
    # a void and the owner's own release of the same hold are one operation).
    release_operation_id: OperationId


class VoidResult(WireModel):
    operation_id: str
    outcome: VoidOutcome


class OperationOutcome(WireModel):
    """What an operation is and where it stands: in its view and in its callback alike."""

    operation_id: str
    kind: OperationKind
    status: OperationStatus
    amount: str
    currency: str
    target: str | None = None
    # Why it failed or was canceled: insufficient_funds, card_declined, voided, ...
    reason: str | None = None


class Operation(OperationOutcome):
    payment_method_id: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class Invoice(WireModel):
    invoice_id: str
    owner: str
    order_id: str
    user_id: str
    currency: str
    callback: CallbackTarget
    operations: list[Operation]
    # Derived from the successful operations, never stored on their own.
    held: str
    cleared: str
    released: str
    # What succeeded refunds gave back of the cleared money (``cleared`` stays what was
    # cleared). Absent from a transactions that predates refunds: "0" then.
    refunded: str = "0"


class TransactionCallback(OperationOutcome):
    """The payload of the task put on the owner's queue when an operation finishes."""

    invoice_id: str
    order_id: str
    # The invoice's payer (whose cashback it is); absent in callbacks put before it was added.
    user_id: str | None = None


class OrderInvoices(WireModel):
    """An order's invoices with their operations (the support tools' read, issue 19)."""

    order_id: str
    invoices: list[Invoice]
