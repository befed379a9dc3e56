"""The feed's cursor and which rows of a read may be served (``eda.feed``)."""

import pytest

from qrpay.eda import feed
from qrpay.kernel.errors import QrpayError


def test_a_cursor_round_trips_and_orders_by_transaction_then_order() -> None:
    cursor = feed.Cursor(89252, "abc")
    assert feed.parse_cursor(cursor.text()) == cursor
    assert feed.Cursor(5, "z") < feed.Cursor(6, "a") < feed.Cursor(6, "b")
    # The start comes before the rows written before the feed existed (change_tx 0).
    assert feed.parse_cursor(None) == feed.parse_cursor("") == feed.START < feed.Cursor(0, "a")
    assert feed.parse_cursor(feed.START.text()) == feed.START


def test_the_tail_comes_after_every_row_below_the_horizon_and_before_the_rest() -> None:
    tail = feed.tail(100)
    assert feed.Cursor(99, "zzzz") < tail < feed.Cursor(100, "0")


@pytest.mark.parametrize("text", ["x", "12", "abc:def", "-5:a", ":a"])
def test_a_malformed_cursor_is_bad_input(text: str) -> None:
    with pytest.raises(QrpayError) as caught:
        feed.parse_cursor(text)
    assert caught.value.code == "bad_cursor"


def test_rows_at_or_above_the_horizon_wait_and_say_more() -> None:
    # The row of transaction 12 committed; 11 may still commit: nothing past 11 is served.
    assert feed.page([9, 10, 12, 13], horizon=11, limit=10) == feed.Page(served=2, more=True)
    assert feed.page([12], horizon=11, limit=10) == feed.Page(served=0, more=True)


def test_a_page_stops_at_the_limit_and_says_more() -> None:
    # Reads take limit + 1 rows: the extra one only tells that there is more.
    assert feed.page([1, 2, 3], horizon=100, limit=2) == feed.Page(served=2, more=True)
    assert feed.page([1, 2], horizon=100, limit=2) == feed.Page(served=2, more=False)
    assert feed.page([], horizon=100, limit=2) == feed.Page(served=0, more=False)
