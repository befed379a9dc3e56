"""iiko-integration's wire types (SPEC 4.1, 4.2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from qrpay.eda.schemas import ClientId, InternalOrderId, OrderId
from qrpay.iiko_integration.domain import PosStatus
from qrpay.kernel.schemas import Bill, WireModel


class CreateOrderRequest(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "rest-1",
                    "internal_order_id": "iiko-42",
                    "bill": {
                        "currency": "RUB",
                        "amount": "100",
                        "elements": [{"name": "Borscht", "amount": "120"}],
                    },
                }
            ]
        }
    )

    client_id: ClientId
    internal_order_id: InternalOrderId
    bill: Bill


class BillLineType(StrEnum):
    TEXT = "text"
    QR_CODE = "qr-code"


class BillLine(WireModel):
    type: BillLineType
    value: str


class CreateOrderResponse(WireModel):
    order_id: str
    bill_lines: list[BillLine]


class ListOrdersRequest(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"client_id": "rest-1", "orders": ["ord-1", "ord-2"]}]}
    )

    client_id: ClientId
    orders: Annotated[list[OrderId], Field(min_length=1, max_length=100)]


class OrderStatusItem(WireModel):
    id: str
    status: PosStatus


class ListOrdersResponse(WireModel):
    orders: list[OrderStatusItem]


class PosChangesResponse(WireModel):
    # The restaurant's orders that changed after the request's cursor, each as of its
    # latest change, in the order they changed; empty when none did within wait_ms.
    orders: list[OrderStatusItem]
    # Where the next request resumes (after a disconnect too, on any instance).
    cursor: str


class AvailabilityResponse(WireModel):
    is_available: bool


class RestaurantItem(WireModel):
    id: str
    name: str
    cashback: Annotated[str, Field(examples=["30%"])]
    address: str | None = None


class RestaurantsResponse(WireModel):
    restaurants: list[RestaurantItem]
