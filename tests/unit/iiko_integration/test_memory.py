"""The statuses in memory: the newer version wins, a status never goes backwards, memory is
bounded and a missing id is remembered only briefly."""

from __future__ import annotations

import gc

import pytest

from qrpay.eda.schemas import OrderChange, OrderStatus, OrderStatusView
from qrpay.iiko_integration import memory as memory_module
from qrpay.iiko_integration.memory import MISSING, Remembered, StatusMemory, is_newer

WAITING = OrderStatus.WAITING
IN_PROGRESS = OrderStatus.PAYMENT_IN_PROGRESS
PAYED = OrderStatus.PAYED


def view(order_id: str, status: OrderStatus, version: int | None) -> OrderStatusView:
    return OrderStatusView(order_id=order_id, client_id="rest-1", status=status, version=version)


def remembered(status: OrderStatus, version: int | None) -> Remembered:
    return Remembered(client_id="rest-1", status=status, version=version)


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
    assert memory.answers(["a"], now=0.0) == {"a": remembered(PAYED, 3)}


def test_missing_ids_are_remembered_until_their_time_and_replaced_by_any_view() -> None:
    memory = StatusMemory(max_orders=10)
    memory.learn_read(["a", "b", "c"], [view("c", WAITING, 1)], until=5.0)
    assert memory.answers(["a", "b", "c", "d"], now=4.9) == {
        "a": MISSING,
        "b": MISSING,
        "c": remembered(WAITING, 1),
    }
    assert memory.answers(["a"], now=5.0) == {}
    memory.learn(view("b", WAITING, 1))
    assert memory.answers(["b"], now=0.0) == {"b": remembered(WAITING, 1)}
    # A read that misses an order memory knows does not make it missing.
    memory.learn_read(["b"], [], until=9.0)
    assert memory.answers(["b"], now=0.0) == {"b": remembered(WAITING, 1)}


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


def test_expired_missing_ids_are_forgotten_not_only_unanswered() -> None:
    memory = StatusMemory(max_orders=10)
    memory.learn_read(["a", "b"], [], until=5.0)
    memory.learn_read(["c"], [], until=7.0)
    assert memory.answers(["c"], now=6.0) == {"c": MISSING}
    # Issue 22: only the bound dropped them before, so ids polled once stayed for good.
    assert list(memory._missing) == ["c"]
    assert memory.answers([], now=7.0) == {}
    assert not memory._missing


def test_an_order_is_answered_as_its_restaurant_status_and_version_only() -> None:
    memory = StatusMemory(max_orders=10)
    change = OrderChange(
        order_id="a", client_id="rest-1", status=PAYED, version=4, refunded_fully=True, change_tx=9
    )
    assert memory.learn(change)
    answered = memory.view("a")
    assert answered == remembered(PAYED, 4)
    assert answered is not None
    assert answered.status is PAYED  # the enum member, as eda's views give it


def test_an_order_is_kept_as_plain_values_the_cyclic_gc_does_not_walk() -> None:
    """Issue 22: a pydantic view per order (three tracked objects) made every full collection
    walk hundreds of thousands of them; a tuple of strings and ints is untracked once the GC
    has seen it, and the restaurant's id is one string for all its orders."""
    memory = StatusMemory(max_orders=10)
    # Equal but distinct strings, as two parsed JSON documents give them.
    first, second = "".join(["rest-", "1"]), "".join(["rest", "-1"])
    assert first is not second
    memory.learn(OrderStatusView(order_id="a", client_id=first, status=WAITING, version=1))
    memory.learn(OrderStatusView(order_id="b", client_id=second, status=PAYED, version=2))
    gc.collect()
    kept = list(memory._orders.values())
    assert [type(record) for record in kept] == [tuple, tuple]
    assert not any(gc.is_tracked(record) for record in kept)
    assert kept[0][0] is kept[1][0]


def test_orders_in_the_same_state_share_one_record_and_sharing_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_module, "SHARED_RECORDS", 2)
    memory = StatusMemory(max_orders=10)
    for order_id, status, version in [("a", WAITING, 1), ("b", WAITING, 1), ("c", PAYED, 2)]:
        memory.learn(view(order_id, status, version))
    assert memory._orders["a"] is memory._orders["b"]
    # Past the bound sharing starts over; what memory holds is unchanged.
    memory.learn(view("d", PAYED, 3))
    memory.learn(view("e", WAITING, 1))
    assert memory.answers(["a", "b", "c", "d", "e"], now=0.0) == {
        "a": remembered(WAITING, 1),
        "b": remembered(WAITING, 1),
        "c": remembered(PAYED, 2),
        "d": remembered(PAYED, 3),
        "e": remembered(WAITING, 1),
    }


def test_past_the_bound_a_sixteenth_of_it_goes_at_once_oldest_first() -> None:
    memory = StatusMemory(max_orders=32)
    for index in range(32):
        memory.learn(view(str(index), WAITING, 1))
    memory.answers(["0"], now=0.0)
    memory.learn(view("1", PAYED, 2))
    memory.learn(view("32", WAITING, 1))
    # 33 > 32: down to 30, the three least recently changed or asked for (2, 3, 4) dropped.
    assert len(memory) == 30
    assert [memory.view(order_id) for order_id in ("2", "3", "4")] == [None, None, None]
    assert all(memory.view(str(index)) is not None for index in (0, 1, 5, 31, 32))


def test_an_ask_counts_at_the_next_drop() -> None:
    """Asks are applied when orders are dropped, not one by one (issue 22: each move took a
    dict slot, and a full memory resized every ~20 s under the POS mix)."""
    memory = StatusMemory(max_orders=64)
    for index in range(64):
        memory.learn(view(str(index), WAITING, 1))
    memory.answers(["0", "1", "nope"], now=0.0)
    memory.learn(view("64", WAITING, 1))
    # Down to 60: 2-6 are the least recently changed or asked for; 0 and 1 were asked for.
    assert [memory.view(str(index)) for index in range(2, 7)] == [None] * 5
    assert all(memory.view(str(index)) is not None for index in (0, 1, 7, 63, 64))
