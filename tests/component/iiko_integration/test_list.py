from __future__ import annotations

from tests.support.component.iiko_integration import HEADERS, Started, list_orders
from tests.support.mockserver import MockServer, error_response


async def test_list_maps_statuses_in_request_order(iiko: Started, mockserver: MockServer) -> None:
    _, client = iiko
    statuses = mockserver.json_handler(
        "/v1/orders/statuses",
        {
            "orders": [
                {"order_id": "paid", "client_id": "rest-1", "status": "PAYED"},
                {"order_id": "paying", "client_id": "rest-1", "status": "PAYMENT_IN_PROGRESS"},
                {"order_id": "waiting", "client_id": "rest-1", "status": "WAITING"},
                {"order_id": "closed", "client_id": "rest-1", "status": "CANCELED"},
                {"order_id": "theirs", "client_id": "rest-2", "status": "PAYED"},
            ]
        },
    )
    requested = ["theirs", "paying", "unknown", "paid", "waiting", "closed", "paid"]

    response = await list_orders(client, requested)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "orders": [
            {"id": "theirs", "status": "NOT_FOUND"},
            {"id": "paying", "status": "WAITING"},
            {"id": "unknown", "status": "NOT_FOUND"},
            {"id": "paid", "status": "PAYED"},
            {"id": "waiting", "status": "WAITING"},
            {"id": "closed", "status": "CANCELED"},
            {"id": "paid", "status": "PAYED"},
        ]
    }
    assert statuses.times_called == 1
    assert statuses.next_call()["json"] == {
        "order_ids": ["theirs", "paying", "unknown", "paid", "waiting", "closed"]
    }


async def test_list_when_eda_fails_is_503(iiko: Started, mockserver: MockServer) -> None:
    _, client = iiko
    mockserver.handler("/v1/orders/statuses")(lambda _r: error_response(503, "down"))
    response = await list_orders(client, ["a"])
    assert response.status_code == 503


async def test_list_validation_never_calls_eda(iiko: Started, mockserver: MockServer) -> None:
    _, client = iiko
    statuses = mockserver.json_handler("/v1/orders/statuses", {"orders": []})
    for body in (
        {"client_id": "rest-1", "orders": []},
        {"client_id": "rest-1", "orders": ["a"] * 101},
        {"client_id": "rest-1", "orders": [""]},
        {"client_id": "rest-1", "orders": [1]},
        # PostgreSQL cannot read a NUL: it used to fail the call eda made for every waiting poll.
        {"client_id": "rest-1", "orders": ["a", "b\x00"]},
        {"client_id": "rest-1", "orders": ["a"], "extra": 1},
        {"orders": ["a"]},
    ):
        response = await client.post("/orders/list", json=body, headers=HEADERS)
        assert response.status_code == 400, body
    assert statuses.times_called == 0
