"""bench-pos's own parts: the staleness probe, the targets beside the figures, CPU per request."""

from __future__ import annotations

from aiohttp import web

from qrpay_tools.bench.pos import cpu_line, fixed_target, probe_staleness
from tests.support.mockserver import MockServer


async def test_staleness_counts_each_change_once_the_poll_shows_it(
    mockserver: MockServer,
) -> None:
    moves: list[tuple[str, str]] = []
    polls_until_paid = {"o-1": 3, "o-2": 1}

    def payment_move(order_id: str, step: str) -> None:
        async def record(_request: web.Request) -> dict[str, str]:
            moves.append((order_id, step))
            return {"order_id": order_id}

        mockserver.handler(f"/v1/orders/{order_id}/payment/{step}")(record)

    for order_id in polls_until_paid:
        for step in ("start", "claim-clear", "complete"):
            payment_move(order_id, step)

    @mockserver.handler("/orders/list")
    async def poll(request: web.Request) -> dict[str, object]:
        (order_id,) = (await request.json())["orders"]
        # Paid only once eda completed it, and then after a few polls (a lagging follower).
        if (order_id, "complete") in moves:
            polls_until_paid[order_id] -= 1
        status = "PAYED" if polls_until_paid[order_id] <= 0 else "WAITING"
        return {"orders": [{"id": order_id, "status": status}]}

    result = await probe_staleness(
        mockserver.base_url, mockserver.base_url, ["o-1", "o-2"], seconds=0, poll_every=0
    )

    assert moves == [(o, s) for o in ("o-1", "o-2") for s in ("start", "claim-clear", "complete")]
    assert len(result.delays) == 2
    assert result.missed == 0
    assert all(delay >= 0 for delay in result.delays)
    assert poll.times_called == 4  # 3 for o-1, 1 for o-2


async def test_a_change_never_shown_is_missed_not_waited_for(mockserver: MockServer) -> None:
    for step in ("start", "claim-clear", "complete"):
        mockserver.json_handler(f"/v1/orders/o-1/payment/{step}", {"order_id": "o-1"})
    mockserver.json_handler("/orders/list", {"orders": [{"id": "o-1", "status": "WAITING"}]})

    result = await probe_staleness(
        mockserver.base_url, mockserver.base_url, ["o-1"], seconds=0, poll_every=0.01, patience=0.3
    )

    assert result.delays == []
    assert result.missed == 1


async def test_a_change_eda_refused_is_counted_apart(mockserver: MockServer) -> None:
    mockserver.json_handler("/v1/orders/o-1/payment/start", {"code": "x"}, status=409)
    polls = mockserver.json_handler("/orders/list", {"orders": []})

    result = await probe_staleness(mockserver.base_url, mockserver.base_url, ["o-1"], seconds=0)

    assert (result.delays, result.missed, result.failed) == ([], 0, 1)
    assert polls.times_called == 0


def test_the_target_rate_has_its_target_beside_it() -> None:
    assert fixed_target(1500, 12.0, 0).endswith(": met")
    assert fixed_target(1500, 25.0, 0).endswith(": MISSED")
    assert fixed_target(1500, 12.0, 3).endswith(": MISSED")
    assert fixed_target(350, 500.0, 9) == ""


def test_cpu_is_per_request_by_process_and_in_all() -> None:
    line = cpu_line({"iiko": 0.5, "eda": 0.25}, 1000)
    assert "iiko 0.500" in line
    assert "eda 0.250" in line
    assert line.endswith("all 0.750")
    assert "no requests" in cpu_line({"iiko": 1.0}, 0)
