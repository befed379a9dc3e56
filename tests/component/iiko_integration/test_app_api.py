from __future__ import annotations

from typing import Any

import pytest

from tests.support.component.iiko_integration import Started

MOSCOW = {"nearest_zone": "moscow", "uuid": "user-1", "phone_id": "phone-1"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (MOSCOW, True),
        ({**MOSCOW, "nearest_zone": "kazan"}, False),
        ({**MOSCOW, "nearest_zone": "kazan", "uuid": "demo-user"}, True),  # allowlist
        ({"nearest_zone": "moscow", "uuid": "user-1"}, False),
        ({**MOSCOW, "uuid": ""}, False),
        ({}, False),
    ],
)
async def test_availability(iiko: Started, params: dict[str, str], expected: bool) -> None:
    _, client = iiko
    response = await client.get("/availability", params=params)
    assert response.status_code == 200
    assert response.json() == {"is_available": expected}


async def test_restaurants_of_the_zone_when_available(iiko: Started) -> None:
    _, client = iiko
    response = await client.get("/restaurants", params=MOSCOW)
    assert response.status_code == 200
    assert response.json() == {
        "restaurants": [
            {
                "id": "rest-1",
                "name": "Pushkin Café",
                "cashback": "30%",
                "address": "Tverskoy Blvd 26A, Moscow",
            }
        ]
    }


@pytest.mark.parametrize(
    "params", [{**MOSCOW, "nearest_zone": "kazan"}, {"nearest_zone": "moscow"}, {}]
)
async def test_no_restaurants_when_not_available(iiko: Started, params: dict[str, Any]) -> None:
    _, client = iiko
    response = await client.get("/restaurants", params=params)
    assert response.status_code == 200
    assert response.json() == {"restaurants": []}


@pytest.mark.parametrize("path", ["/availability", "/restaurants"])
@pytest.mark.parametrize("field", ["nearest_zone", "uuid", "phone_id"])
async def test_over_long_params_are_400(iiko: Started, path: str, field: str) -> None:
    _, client = iiko
    response = await client.get(path, params={**MOSCOW, field: "x" * 129})
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}
