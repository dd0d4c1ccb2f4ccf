"""Inbound: a reply from a handset (MO) becomes a ``received`` message of the number's owner.

Every carrier adapter (SMPP deliver_sm, HTTP inbound callbacks) hands its reassembled MO here.
The message is stored with its ``message.received`` event in one durable transaction, which
also queues the webhooks and the ``deliver_sm`` to the owner's bound SMPP sessions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import InvalidRecipient
from pigeon.domain.messages import Category, Direction, Message, MessageStatus, StatusChange
from pigeon.domain.numbers import OwnedNumber, inbound_destination_forms
from pigeon.ports import Acceptance, Clock, IdFactory, MessageStore, NumberStore
from pigeon.services.events import EventRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """A mobile-originated message as a carrier delivered it."""

    connector_id: str
    source: str
    destination: str
    text: str
    received_at: datetime


class ReceiveMessage:
    """Stores a reply for the tenant owning its destination number; unknown numbers are
    logged and dropped (the carrier is still acknowledged)."""

    def __init__(
        self,
        store: MessageStore,
        numbers: NumberStore,
        recorder: EventRecorder,
        clock: Clock,
        ids: IdFactory,
    ) -> None:
        self._store = store
        self._numbers = numbers
        self._recorder = recorder
        self._clock = clock
        self._ids = ids

    async def __call__(self, reply: Reply) -> Message | None:
        """The stored ``received`` message, or ``None`` when nobody owns the destination."""
        owner = await self._numbers.find_owner(inbound_destination_forms(reply.destination))
        if owner is None:
            log.warning(
                "reply to %s via %s dropped: the number is not in the inventory",
                reply.destination,
                reply.connector_id,
            )
            return None
        message = self._message(reply, owner)
        change = StatusChange(
            message_id=message.id,
            status=MessageStatus.RECEIVED,
            previous_status=None,
            sequence=1,
            at=message.created_at,
            detail=f"via {reply.connector_id}",
        )
        notify = await self._recorder.wants_notifications(message)
        events, jobs = self._recorder.record(message, [change], notify=notify)
        result = await self._store.accept(Acceptance(message, events, jobs))
        return result.message

    def _message(self, reply: Reply, owner: OwnedNumber) -> Message:
        now = self._clock.now()
        sender = reply.source.strip()
        country = None
        try:
            number = parse_msisdn(sender, field="from")
            sender, country = number.e164, number.country
        except InvalidRecipient:
            pass  # an alphanumeric or national source stays as the carrier gave it
        text = analyse(reply.text)
        return Message(
            id=self._ids.new("msg"),
            tenant_id=owner.tenant_id,
            direction=Direction.MO,
            to=owner.value,
            sender=sender,
            body=reply.text,
            category=Category.TRANSACTIONAL,
            encoding=text.encoding.value,
            segments=text.segments,
            status=MessageStatus.RECEIVED,
            created_at=now,
            updated_at=now,
            country=country,
            connector_id=reply.connector_id,
            status_sequence=1,
        )
