"""The public shape of a message made as a struct equals the one made from its dict."""

from __future__ import annotations

import msgspec
from hypothesis import given

from pigeon.api.schemas import MessageResponse, message_response
from pigeon.domain.messages import Message
from pigeon.services.representation import message_to_dict
from support.message_strategies import public_messages


@given(public_messages())
def test_the_struct_made_directly_is_the_one_converted_from_the_dict(message: Message) -> None:
    """Field by field and on the wire, ``message_response`` is ``message_to_dict`` converted
    (the shape shared with webhooks), whatever parts the message has."""
    direct = message_response(message)
    converted = msgspec.convert(message_to_dict(message), MessageResponse)
    assert direct == converted
    assert msgspec.json.encode(direct) == msgspec.json.encode(converted)
