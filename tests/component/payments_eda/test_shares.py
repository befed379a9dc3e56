"""A share of a split bill in payments-eda, its downstreams mocked: the clear's callback
completes the share and accrues its own cashback, the sweep gives back a share whose hold
never came, and a share's rollback yields to its captured clear."""

from __future__ import annotations

from typing import Any

from tests.support.component.payments_eda import ORDER_ID, USER, Env
from tests.support.mockserver import MockServer

SHARE = "s1"


def ledger(*shares: tuple[str, str, str], status: str = "WAITING") -> dict[str, Any]:
    """eda's ledger of a 1000 RUB bill with ``shares`` as (id, amount, state)."""
    return {
        "order_id": ORDER_ID,
        "client_id": "rest-1",
        "status": status,
        "currency": "RUB",
        "total": "1000.00",
        "paid": "0.00",
        "held": "0.00",
        "left": "0.00",
        "tips": "0.00",
        "taken_items": [],
        "shares": [
            {
                "share_id": share_id,
                "amount": amount,
                "tip": "0.00",
                "items": [],
                "state": state,
                "created_at": f"2026-01-01T12:0{n}:00Z",
                "updated_at": f"2026-01-01T12:0{n}:00Z",
            }
            for n, (share_id, amount, state) in enumerate(shares)
        ],
    }


def share_callback(op_id: str, kind: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "invoice_id": SHARE,
        "order_id": ORDER_ID,
        "user_id": USER,
        "operation_id": op_id,
        "kind": kind,
        "status": status,
        "amount": "400.00",
        "currency": "RUB",
        "target": None if kind == "hold" else SHARE,
        "reason": None if status == "succeeded" else "card_declined",
    }


def share_write(mock: MockServer, move: str, body: Any, status: int = 200) -> Any:
    return mock.json_handler(f"/v1/orders/{ORDER_ID}/shares/{move}", body, status)


async def test_a_captured_clear_completes_the_share_and_earns_its_cashback(pe: Env) -> None:
    pe.mock.json_handler(
        f"/v1/orders/{ORDER_ID}/shares",
        ledger(("s0", "600.00", "paid"), (SHARE, "400.00", "holding")),
        method="GET",
    )
    complete = share_write(
        pe.mock, "complete", ledger(("s0", "600.00", "paid"), (SHARE, "400.00", "paid"))
    )
    pe.order()
    accrual = {
        "order_id": f"{ORDER_ID}.{SHARE}",
        "user_id": USER,
        "amount": "120",
        "currency": "RUB",
        "source": "rest-1",
        "created_at": "2026-01-01T12:00:00Z",
    }
    accrue = pe.mock.json_handler(
        f"/v1/accruals/{ORDER_ID}.{SHARE}", {"accrual": accrual, "created": True}, method="PUT"
    )
    await pe.handlers.transaction_callback(share_callback(f"{SHARE}.clear", "clear"))
    assert complete.next_call()["json"] == {"share_id": SHARE}
    # 30% of the share's 400 (rest-1's cap of 3000 is far): keyed by the share, not the order.
    assert accrue.next_call()["json"] == {
        "user_id": USER,
        "amount": "120",
        "currency": "RUB",
        "source": "rest-1",
    }


async def test_a_declined_hold_gives_the_share_back(pe: Env) -> None:
    pe.mock.json_handler(
        f"/v1/orders/{ORDER_ID}/shares", ledger((SHARE, "400.00", "holding")), method="GET"
    )
    fail = share_write(pe.mock, "fail", ledger((SHARE, "400.00", "released")))
    await pe.handlers.transaction_callback(share_callback(SHARE, "hold", "failed"))
    assert fail.next_call()["json"] == {"share_id": SHARE}


async def test_the_sweep_gives_back_a_share_whose_hold_never_came(pe: Env) -> None:
    pe.mock.json_handler("/v1/orders", {"orders": []}, method="GET")
    pe.mock.json_handler(
        "/v1/orders/shares/overdue",
        {"shares": [{"order_id": ORDER_ID, "share_id": SHARE, "state": "holding"}]},
        method="GET",
    )
    missing = {"code": "invoice_not_found", "message": "no"}
    pe.mock.json_handler(f"/v1/invoices/{SHARE}", missing, 404, method="GET")
    void = pe.mock.json_handler(f"/v1/invoices/{SHARE}/operations/{SHARE}/void", missing, 404)
    begin = share_write(pe.mock, "begin-rollback", ledger((SHARE, "400.00", "rolling_back")))
    fail = share_write(pe.mock, "fail", ledger((SHARE, "400.00", "released")))
    assert await pe.service.sweep_stuck_payments() == 1
    assert begin.next_call()["json"] == {"share_id": SHARE}
    assert void.next_call()["json"] == {"release_operation_id": f"{SHARE}.unhold"}
    assert fail.next_call()["json"] == {"share_id": SHARE}
    assert pe.metric("qrpay_problem_orders_total", reason="hold_not_started") == 1


async def test_a_share_rollback_yields_to_its_captured_clear(pe: Env) -> None:
    pe.mock.json_handler("/v1/orders", {"orders": []}, method="GET")
    pe.mock.json_handler(
        "/v1/orders/shares/overdue",
        {"shares": [{"order_id": ORDER_ID, "share_id": SHARE, "state": "rolling_back"}]},
        method="GET",
    )
    share_write(pe.mock, "begin-rollback", ledger((SHARE, "400.00", "rolling_back")))
    pe.mock.json_handler(
        f"/v1/invoices/{SHARE}/operations/{SHARE}/void",
        {"code": "hold_clearing", "message": "captured"},
        409,
    )
    fail = share_write(pe.mock, "fail", ledger((SHARE, "400.00", "released")))
    assert await pe.service.sweep_stuck_payments() == 1
    assert not fail.times_called  # the clear finishes it: never given back
