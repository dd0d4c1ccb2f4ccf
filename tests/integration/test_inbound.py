"""Replies: the numbers inventory and the inbound use case on a real database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from pigeon.domain.accounts import Tenant
from pigeon.domain.addressing import SenderKind
from pigeon.domain.errors import ValidationError
from pigeon.domain.messages import Direction, MessageStatus
from pigeon.domain.numbers import OwnedNumber, normalise_number
from pigeon.ids import UlidFactory
from pigeon.ports import MessageQuery
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.inbound import ReceiveMessage, Reply
from pigeon.store import SqlNumberStore

if TYPE_CHECKING:
    from conftest import Stores

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


async def owner(stores: Stores, name: str) -> Tenant:
    tenant = Tenant(UlidFactory().new("ten"), name, None, AT)
    await stores.accounts.create_tenant(tenant)
    return tenant


async def test_a_number_has_one_owner(stores: Stores) -> None:
    """Numbers are stored normalised, listed per tenant, and cannot be owned twice."""
    numbers = SqlNumberStore(stores.database)
    acme = await owner(stores, "acme")
    globex = await owner(stores, "globex")
    value, kind = normalise_number("+1 415 555 0199")
    assert (value, kind) == ("+14155550199", SenderKind.LONG_CODE)
    await numbers.add_number(OwnedNumber(value, acme.id, kind, AT))
    await numbers.add_number(OwnedNumber("12345", acme.id, SenderKind.SHORT_CODE, AT))
    with pytest.raises(ValidationError) as info:
        await numbers.add_number(OwnedNumber(value, globex.id, kind, AT))
    assert info.value.code == "already_exists"
    assert [n.value for n in await numbers.list_numbers(acme.id)] == ["+14155550199", "12345"]
    assert await numbers.list_numbers(globex.id) == []


async def test_reply_is_stored_for_the_owner_whatever_the_address_form(stores: Stores) -> None:
    """A reply to 14155550199 (no +) becomes a received MO message of the number's owner."""
    numbers = SqlNumberStore(stores.database)
    acme = await owner(stores, "acme")
    await numbers.add_number(OwnedNumber("+14155550199", acme.id, SenderKind.LONG_CODE, AT))
    ids = UlidFactory()
    recorder = EventRecorder(ids, stores.clock, EndpointDirectory(stores.webhooks, 0))
    receive = ReceiveMessage(stores.messages, numbers, recorder, stores.clock, ids)
    stored = await receive(Reply("carrier", "447400123456", "14155550199", "STOP", AT))
    assert stored is not None
    message = await stores.messages.get_message(stored.id, acme.id)
    assert message is not None
    assert message.direction is Direction.MO
    assert message.status is MessageStatus.RECEIVED
    assert (message.sender, message.to, message.body) == ("+447400123456", "+14155550199", "STOP")
    events = await stores.messages.events_of(message.id)
    assert [e.type for e in events] == ["message.received"]


async def test_reply_to_an_unknown_number_is_dropped(stores: Stores) -> None:
    """Nobody owns the destination: nothing is stored."""
    numbers = SqlNumberStore(stores.database)
    acme = await owner(stores, "acme")
    ids = UlidFactory()
    recorder = EventRecorder(ids, stores.clock, EndpointDirectory(stores.webhooks, 0))
    receive = ReceiveMessage(stores.messages, numbers, recorder, stores.clock, ids)
    assert await receive(Reply("carrier", "+447400123456", "+14155550188", "hi", AT)) is None
    page = await stores.messages.list_messages(acme.id, MessageQuery())
    assert page.messages == []


def test_invalid_numbers_are_refused() -> None:
    """Something that is neither a phone number, a short code nor a sender id is refused."""
    with pytest.raises(ValidationError) as info:
        normalise_number("not a number at all")
    assert info.value.code == "invalid_number"
