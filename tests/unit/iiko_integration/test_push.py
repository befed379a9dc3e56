"""The push fan-out's buffer and queues (pure): what a cursor is answered with, when the
buffer no longer covers it, and a queue that overflows."""

from __future__ import annotations

import pytest

from qrpay.eda.schemas import OrderChange, OrderStatus
from qrpay.iiko_integration.push import PushHub, key_text, parse_key
from qrpay.kernel.errors import InvalidInput


def change(tx: int, order_id: str, client_id: str = "rest-1") -> OrderChange:
    return OrderChange(
        order_id=order_id, client_id=client_id, status=OrderStatus.PAYED, version=1, change_tx=tx
    )


def hub_with(*pages: list[OrderChange], buffer_size: int = 100) -> PushHub:
    hub = PushHub(lambda: buffer_size)
    cursor = "10:"
    for page in pages:
        after = cursor
        if page:
            cursor = key_text((page[-1].change_tx, page[-1].order_id))
        hub.publish(after, page, cursor)
    return hub


def test_cursors_are_eda_feed_keys() -> None:
    assert parse_key("12:abc") == (12, "abc")
    assert parse_key("12:") < parse_key("12:a") < parse_key("13:")
    for bad in ("", "abc", "x:1", "12"):
        with pytest.raises(InvalidInput):
            parse_key(bad)


def test_a_cursor_is_answered_with_the_scopes_changes_after_it_in_order() -> None:
    hub = hub_with(
        [change(11, "a"), change(12, "b", "rest-2")], [change(13, "c"), change(14, "d", "rest-3")]
    )
    scope = frozenset({"rest-1", "rest-2"})
    assert [p.order_id for p in hub.since(parse_key("10:"), scope, 10)] == ["a", "b", "c"]
    assert [p.order_id for p in hub.since(parse_key("11:a"), scope, 10)] == ["b", "c"]
    assert [p.order_id for p in hub.since(parse_key("11:a"), scope, 1)] == ["b"]
    assert hub.since(parse_key("14:d"), scope, 10) == []
    assert hub.position == (14, "d")


def test_evicted_changes_move_the_floor_and_a_gap_in_pages_starts_over() -> None:
    hub = hub_with([change(11, "a"), change(12, "b"), change(13, "c")], buffer_size=2)
    assert hub.floor == (11, "a")
    assert not hub.covers(parse_key("10:"))
    assert hub.covers(parse_key("11:a"))
    # A page that does not start where the last ended (the follower started over).
    hub.publish("20:", [change(21, "z")], "21:z")
    assert hub.floor == (20, "")
    assert [p.order_id for p in hub.since(parse_key("20:"), frozenset({"rest-1"}), 10)] == ["z"]


def test_a_subscription_gets_its_restaurants_changes_after_its_floor_and_overflows() -> None:
    hub = hub_with([change(11, "a")])
    subscription = hub.subscribe(frozenset({"rest-1"}), max_queued=2, floor=(11, "a"))
    hub.publish("11:a", [change(12, "b"), change(13, "x", "rest-2")], "13:x")
    assert [p.order_id for p in subscription.take()] == ["b"]
    hub.publish("13:x", [change(14, "c"), change(15, "d"), change(16, "e")], "16:e")
    assert subscription.overflowed
    hub.unsubscribe(subscription)
    assert hub.connections == 0
