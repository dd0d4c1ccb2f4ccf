"""A status change's webhook body made from structs is the one made from the dicts, byte for
byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.messages import Message, MessageStatus, StatusChange
from pigeon.ports import EventRecord
from pigeon.services.notify import webhook_body
from pigeon.services.representation import event_payload, event_type, webhook_body_of
from support.message_strategies import public_messages, short_texts, utc_times


@st.composite
def changes(draw: st.DrawFn) -> tuple[Message, StatusChange]:
    """A message with every optional part present or not, and one change of it."""
    message = draw(public_messages())
    change = StatusChange(
        message.id,
        draw(st.sampled_from(list(MessageStatus))),
        draw(st.none() | st.sampled_from(list(MessageStatus))),
        draw(st.integers(min_value=0, max_value=50)),
        draw(utc_times),
        draw(st.none() | st.just("") | short_texts),
        None,
    )
    return message, change


@given(changes(), st.text(min_size=1, max_size=30))
def test_the_body_made_from_structs_is_the_dicts_body(
    planned: tuple[Message, StatusChange], event_id: str
) -> None:
    """``webhook_body_of`` gives the bytes ``webhook_body`` makes of ``event_payload``'s dict,
    whatever parts the message and the change have (a detail, a price, times or none)."""
    message, change = planned
    kind = event_type(change.status)
    event = EventRecord(
        event_id,
        message.tenant_id,
        message.id,
        kind,
        change.status,
        change.sequence,
        change.at,
        change.detail,
        {},
    )
    expected = webhook_body(event, event_payload(message, change))
    assert webhook_body_of(event_id, kind, message, change) == expected
