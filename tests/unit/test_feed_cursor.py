"""eda's feed cursor has one parser (``eda.schemas.parse_feed_cursor``): eda's feed and
iiko-integration's push accept exactly the same texts, and a cursor's text parses back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrpay.eda.feed import parse_cursor
from qrpay.eda.schemas import FeedCursor
from qrpay.iiko_integration.push import key_text, parse_key
from qrpay.kernel.errors import InvalidInput

TEXTS = st.one_of(
    st.text(max_size=20),
    st.builds(lambda n, s: f"{n}:{s}", st.integers(-5, 2**40), st.text(max_size=10)),
)


def accepted(parse: Callable[[str], object], text: str) -> object:
    """What ``parse`` made of ``text``, or the refusal's code."""
    try:
        return parse(text)
    except InvalidInput as exc:
        return exc.code


@given(TEXTS.filter(bool))
def test_eda_and_its_followers_accept_the_same_cursors(text: str) -> None:
    from_eda = accepted(parse_cursor, text)
    from_push = accepted(parse_key, text)
    assert (from_eda == "bad_cursor") == (from_push == "bad_cursor"), text
    if isinstance(from_eda, FeedCursor):
        assert (from_eda.change_tx, from_eda.order_id) == from_push


@given(st.integers(-1, 2**62), st.text(max_size=40))
def test_a_cursors_text_parses_back(change_tx: int, order_id: str) -> None:
    cursor = FeedCursor(change_tx, order_id)
    assert parse_cursor(cursor.text()) == cursor
    assert key_text(parse_key(cursor.text())) == cursor.text()


@pytest.mark.parametrize("text", ["-2:x", "x:1", "12", "1.5:a", ":a"])
def test_what_is_not_a_cursor(text: str) -> None:
    assert accepted(parse_cursor, text) == "bad_cursor"
    assert accepted(parse_key, text) == "bad_cursor"
