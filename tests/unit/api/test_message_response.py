"""The public shape of a message made as a struct equals the one made from its dict."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from pigeon.api.schemas import MessageResponse, message_response
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.services.representation import message_to_dict

TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
TEXT = st.text(min_size=1, max_size=12)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    """Messages with every optional part present or not."""
    created = draw(TIMES)
    return Message(
        draw(TEXT),
        "ten_1",
        draw(st.sampled_from(list(Direction))),
        draw(TEXT),
        draw(st.none() | TEXT),
        draw(st.text(max_size=20)),
        draw(st.sampled_from(list(Category))),
        draw(st.sampled_from(["gsm7", "ucs2"])),
        draw(st.integers(min_value=1, max_value=10)),
        draw(st.sampled_from(list(MessageStatus))),
        created,
        draw(TIMES),
        client_ref=draw(st.none() | TEXT),
        send_at=draw(st.none() | TIMES),
        expires_at=draw(st.none() | TIMES),
        error_code=draw(st.none() | TEXT),
        price=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
        currency=draw(st.none() | st.sampled_from(["EUR", "USD"])),
        is_test=draw(st.booleans()),
    )


@given(messages())
def test_the_struct_made_directly_is_the_one_converted_from_the_dict(message: Message) -> None:
    """Field by field and on the wire, ``message_response`` is ``message_to_dict`` converted
    (the shape shared with webhooks), whatever parts the message has."""
    direct = message_response(message)
    converted = msgspec.convert(message_to_dict(message), MessageResponse)
    assert direct == converted
    assert msgspec.json.encode(direct) == msgspec.json.encode(converted)
