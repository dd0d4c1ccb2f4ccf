"""How a message looks to the outside: the one JSON shape used by the API and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from pigeon.domain.messages import Direction, Message, MessageStatus, StatusChange
from pigeon.domain.pricing import Money

#: Event types that are sent to webhooks (PRODUCT.md plus the other final statuses).
WEBHOOK_STATUSES = frozenset(
    {
        MessageStatus.QUEUED,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.EXPIRED,
        MessageStatus.REJECTED,
        MessageStatus.CANCELED,
        MessageStatus.UNKNOWN,
        MessageStatus.RECEIVED,
    }
)


#: The text of recent UTC seconds ("YYYY-MM-DDTHH:MM:SS"), by (year, month, day, hour, minute,
#: second): a message's times, and a batch's, fall within a few seconds of each other, and
#: nearly every time is new (each change has its own), so the second's text is looked up and
#: the milliseconds come from a table: a third of ``isoformat``'s cost (bounded: emptied when
#: full).
_ISO_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}
_ISO_SECONDS_MAX = 4096
_ISO_MILLISECONDS = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))
#: The whole text of recent UTC instants: the accepts of one turn share theirs
#: (``clock.TurnClock``), and a message's times read back from the store are the same
#: objects for the same stored text (``store.tables.sqlite_utc``), so most are asked for
#: again. Only UTC times: an equal instant at another offset has a text of its own.
_ISO_TEXTS: dict[datetime, str] = {}
_ISO_TEXTS_MAX = 4096


def iso(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with a ``Z`` and millisecond precision, or ``None``."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # kept only for UTC: equal instants may differ in offset
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = _ISO_TEXTS.get(moment)
    if text is None:
        second = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
        text = _ISO_SECONDS.get(second)
        if text is None:
            if len(_ISO_SECONDS) >= _ISO_SECONDS_MAX:
                _ISO_SECONDS.clear()
            text = _ISO_SECONDS[second] = moment.isoformat(timespec="seconds")[:19]
        text += _ISO_MILLISECONDS[moment.microsecond // 1000]
        if len(_ISO_TEXTS) >= _ISO_TEXTS_MAX:
            _ISO_TEXTS.clear()
        _ISO_TEXTS[moment] = text
    return text


def message_to_dict(message: Message) -> dict[str, Any]:
    """The public representation of a message (PRODUCT.md's ``Message``)."""
    data: dict[str, Any] = {
        "id": message.id,
        "status": str(message.status),
        "direction": "outbound" if message.direction is Direction.MT else "inbound",
        "to": message.to,
        "from": message.sender,
        "body": message.body,
        "category": str(message.category),
        "encoding": message.encoding,
        "segments": message.segments,
        "price": None,
        "client_ref": message.client_ref,
        "error_code": message.error_code,
        "send_at": iso(message.send_at),
        "expires_at": iso(message.expires_at),
        "test": message.is_test,
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
    }
    if message.price is not None and message.currency is not None:
        data["price"] = {
            "amount": Money(message.price, message.currency).as_decimal_string(),
            "currency": message.currency,
        }
    return data


#: Each status's event type, made once (formatting one costs more than looking it up).
_EVENT_TYPES: dict[MessageStatus, str] = {status: f"message.{status}" for status in MessageStatus}


def event_type(status: MessageStatus) -> str:
    """The webhook event type of a status change, e.g. ``message.delivered``."""
    found = _EVENT_TYPES.get(status)
    return found if found is not None else f"message.{status}"


def event_payload(
    message: Message, change: StatusChange, as_dict: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The webhook ``data`` for a change: the message then, plus ordering information.
    ``as_dict``: ``message_to_dict(message)`` when the caller has it (it is copied, not
    changed), so several changes of one message share its making."""
    data = message_to_dict(message) if as_dict is None else dict(as_dict)
    # ``str`` of a ``StrEnum`` member is its value, without ``.value``'s two Python-level calls.
    data["status"] = str(change.status)
    previous = change.previous_status
    data["previous_status"] = str(previous) if previous else None
    data["status_sequence"] = change.sequence
    data["occurred_at"] = iso(change.at)
    if change.detail:
        data["detail"] = change.detail
    return data


class _Price(msgspec.Struct):
    amount: str
    currency: str


class _EventData(msgspec.Struct, rename={"sender": "from"}, omit_defaults=True):
    """``event_payload``'s dict as a struct: the same keys in the same order (``detail`` only
    when the change has one)."""

    id: str
    status: str
    direction: str
    to: str
    sender: str | None
    body: str
    category: str
    encoding: str
    segments: int
    price: _Price | None
    client_ref: str | None
    error_code: str | None
    send_at: str | None
    expires_at: str | None
    test: bool
    created_at: str | None
    updated_at: str | None
    previous_status: str | None
    status_sequence: int
    occurred_at: str | None
    detail: str | msgspec.UnsetType = msgspec.UNSET


class _WebhookBody(msgspec.Struct):
    id: str
    type: str
    created_at: str | None
    data: _EventData


_BODY_JSON = msgspec.json.Encoder()


def webhook_body_of(event_id: str, kind: str, message: Message, change: StatusChange) -> str:
    """The webhook body of event ``event_id`` (type ``kind``) for ``change`` of ``message``:
    ``notify.webhook_body`` of ``event_payload``'s dict, byte for byte, made as structs by
    position without the dicts (a status change's deliveries are planned with it; a test
    holds the two equal)."""
    price = None
    if message.price is not None and message.currency is not None:
        price = _Price(Money(message.price, message.currency).as_decimal_string(), message.currency)
    previous = change.previous_status
    occurred_at = iso(change.at)
    data = _EventData(
        message.id,  # id
        str(change.status),  # status
        "outbound" if message.direction is Direction.MT else "inbound",  # direction
        message.to,  # to
        message.sender,  # sender ("from")
        message.body,  # body
        str(message.category),  # category
        message.encoding,  # encoding
        message.segments,  # segments
        price,  # price
        message.client_ref,  # client_ref
        message.error_code,  # error_code
        iso(message.send_at),  # send_at
        iso(message.expires_at),  # expires_at
        message.is_test,  # test
        iso(message.created_at),  # created_at
        iso(message.updated_at),  # updated_at
        str(previous) if previous else None,  # previous_status
        change.sequence,  # status_sequence
        occurred_at,  # occurred_at
        change.detail if change.detail else msgspec.UNSET,  # detail
    )
    return _BODY_JSON.encode(_WebhookBody(event_id, kind, occurred_at, data)).decode()
