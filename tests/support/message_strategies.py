"""Hypothesis strategies for messages as the public representation sees them."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from pigeon.domain.messages import Category, Direction, Message, MessageStatus

#: Aware UTC times, as the store and the clock give them.
utc_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
short_texts = st.text(min_size=1, max_size=12)


@st.composite
def public_messages(draw: st.DrawFn) -> Message:
    """Messages with every part the public representation shows present or not."""
    return Message(
        draw(short_texts),
        "ten_1",
        draw(st.sampled_from(list(Direction))),
        draw(short_texts),
        draw(st.none() | short_texts),
        draw(st.text(max_size=20)),
        draw(st.sampled_from(list(Category))),
        draw(st.sampled_from(["gsm7", "ucs2"])),
        draw(st.integers(min_value=1, max_value=10)),
        draw(st.sampled_from(list(MessageStatus))),
        draw(utc_times),
        draw(utc_times),
        client_ref=draw(st.none() | short_texts),
        send_at=draw(st.none() | utc_times),
        expires_at=draw(st.none() | utc_times),
        error_code=draw(st.none() | short_texts),
        price=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
        currency=draw(st.none() | st.sampled_from(["EUR", "USD"])),
        is_test=draw(st.booleans()),
    )
