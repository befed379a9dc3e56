"""The statuses in memory: the newer version wins, a status never goes backwards, memory is
bounded and a missing id is remembered only briefly."""

from __future__ import annotations

import pytest

from qrpay.eda.schemas import OrderStatus, OrderStatusView
from qrpay.iiko_integration.memory import MISSING, StatusMemory, is_newer

WAITING = OrderStatus.WAITING
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
PAYED = OrderStatus.PAYED


def view(order_id: str, status: OrderStatus, version: int | None) -> OrderStatusView:
    return OrderStatusView(order_id=order_id, client_id="rest-1", status=status, version=version)


@pytest.mark.parametrize(
    ("incoming", "known", "newer"),
    [
        (view("a", WAITING, 1), None, True),
        (view("a", PAYED, 3), view("a", IN_PROGRESS, 2), True),
        # A failed payment gives the order back: WAITING after PAYMENT_IN_PROGRESS is newer.
        (view("a", WAITING, 3), view("a", IN_PROGRESS, 2), True),
        # A late view of an earlier state never replaces a later one, whatever its status.
        (view("a", IN_PROGRESS, 2), view("a", WAITING, 3), False),
        (view("a", WAITING, 2), view("a", PAYED, 3), False),
        (view("a", PAYED, 3), view("a", PAYED, 3), False),
        # An eda older than the feed gives no version: such a view is never kept.
        (view("a", PAYED, None), view("a", WAITING, 1), False),
        (view("a", PAYED, 1), view("a", WAITING, None), True),
    ],
)
def test_the_newer_version_wins_not_the_status(
    incoming: OrderStatusView, known: OrderStatusView | None, newer: bool
) -> None:
    assert is_newer(incoming, known) is newer


def test_a_status_in_memory_never_goes_backwards() -> None:
    memory = StatusMemory(max_orders=10)
    assert memory.learn(view("a", PAYED, 3))
    assert not memory.learn(view("a", WAITING, 2))
    memory.learn_read(["a"], [view("a", IN_PROGRESS, 2)], until=10.0)
    assert memory.answers(["a"], now=0.0) == {"a": view("a", PAYED, 3)}


def test_missing_ids_are_remembered_until_their_time_and_replaced_by_any_view() -> None:
    memory = StatusMemory(max_orders=10)
    memory.learn_read(["a", "b", "c"], [view("c", WAITING, 1)], until=5.0)
    assert memory.answers(["a", "b", "c", "d"], now=4.9) == {
        "a": MISSING,
        "b": MISSING,
        "c": view("c", WAITING, 1),
    }
    assert memory.answers(["a"], now=5.0) == {}
    memory.learn(view("b", WAITING, 1))
    assert memory.answers(["b"], now=0.0) == {"b": view("b", WAITING, 1)}
    # A read that misses an order memory knows does not make it missing.
    memory.learn_read(["b"], [], until=9.0)
    assert memory.answers(["b"], now=0.0) == {"b": view("b", WAITING, 1)}


def test_memory_keeps_the_orders_most_recently_changed_or_asked_for() -> None:
    memory = StatusMemory(max_orders=2)
    memory.learn(view("a", WAITING, 1))
    memory.learn(view("b", WAITING, 1))
    memory.answers(["a"], now=0.0)
    memory.learn(view("c", WAITING, 1))
    assert len(memory) == 2
    assert memory.view("b") is None  # dropped: read from eda again when asked for
    assert memory.view("a") is not None
    assert memory.view("c") is not None
