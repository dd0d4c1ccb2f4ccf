"""The wire schemas of the REST API: msgspec Structs for request bodies and responses.

Request bodies are decoded strictly by ``decode_body`` (JSON types must match, unknown fields are
refused). Message responses have ``services.representation.message_to_dict``'s shape, the one
shared with webhooks (``message_response`` makes it as a struct directly; a test holds the two
equal).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from pigeon.api.problems import ApiError
from pigeon.domain.errors import NotFound, ValidationError
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.pricing import Money
from pigeon.ports import EventRecord, WebhookEndpoint
from pigeon.services.accept import Preview, SendRequest
from pigeon.services.representation import iso, message_to_dict

# --- requests -------------------------------------------------------------------------------


class SendMessageRequest(msgspec.Struct, forbid_unknown_fields=True, rename={"sender": "from"}):
    """A message to send (``POST /v1/messages``) or to preview (``POST /v1/messages/preview``)."""

    to: Annotated[
        str,
        Meta(
            description="The recipient: E.164 (`+447400123456`), or a national number with "
            "`country`.",
            examples=["+447400123456"],
        ),
    ]
    body: Annotated[str | None, Meta(description="The text; GSM 03.38 or UCS-2.")] = None
    country: Annotated[
        str | None,
        Meta(description="ISO 3166 alpha-2 region of a national-format `to`, e.g. `GB`."),
    ] = None
    sender: Annotated[
        str | None,
        Meta(description="Sender id: up to 11 letters and digits, a short code or E.164 number."),
    ] = None
    category: Annotated[
        Category,
        Meta(description="otp, transactional or marketing: decides priority and consent rules."),
    ] = Category.TRANSACTIONAL
    callback_url: Annotated[
        str | None, Meta(description="An http(s) URL that also gets this message's webhooks.")
    ] = None
    client_ref: Annotated[
        Annotated[str, Meta(max_length=255)] | None,
        Meta(description="Your own reference (up to 255 characters), echoed back."),
    ] = None
    send_at: Annotated[
        datetime | None,
        Meta(description="When to send (RFC 3339 with a time zone); omitted or past: now."),
    ] = None
    validity_seconds: Annotated[
        int | None,
        Meta(description="How long carriers keep trying, 60 s to 7 days (default 48 h)."),
    ] = None
    max_price: Annotated[
        str | float | None,
        Meta(
            description="The most this message may cost, as a decimal string or number. "
            "Accepted and validated; not enforced yet."
        ),
    ] = None
    template: Annotated[
        Any,
        Meta(description='`{"id", "variables"}` instead of `body`: not supported yet (422).'),
    ] = UNSET

    def to_send_request(self) -> SendRequest:
        """The use case's request; raises ``ValidationError`` for what the decoder cannot see."""
        if self.template is not UNSET:
            raise ValidationError(
                "Templates are not supported yet; send the text in 'body'.",
                code="unsupported_field",
                field="template",
            )
        _check_max_price(self.max_price)
        # By position, in the request's field order: half the cost of keywords.
        return SendRequest(
            self.to,  # to
            self.body,  # body
            self.country,  # country
            self.sender,  # sender
            self.category,  # category
            self.callback_url,  # callback_url
            self.client_ref,  # client_ref
            self.send_at,  # send_at
            self.validity_seconds,  # validity_seconds
        )


def _check_max_price(value: str | float | None) -> None:
    if value is None:
        return
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        ok = amount.is_finite() and amount >= 0
    else:
        ok = math.isfinite(value) and value >= 0
    if not ok:
        raise ValidationError(
            'max_price must be a non-negative decimal, e.g. "0.05".',
            code="invalid_field",
            field="max_price",
        )


class CreateWebhookEndpointRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A webhook endpoint to register (``POST /v1/webhook-endpoints``)."""

    url: Annotated[str, Meta(description="An absolute http(s) URL that receives the events.")]
    events: Annotated[
        list[str] | None,
        Meta(description="Event types such as `message.delivered`; omitted or empty: all."),
    ] = None


# --- responses ------------------------------------------------------------------------------

Timestamp = Annotated[str, Meta(description="UTC, ISO-8601 with milliseconds and `Z`.")]


class Price(msgspec.Struct):
    """An amount of money as a decimal string (six places) and its currency."""

    amount: str
    currency: str


class MessageResponse(msgspec.Struct, rename={"sender": "from"}):
    """A message, as the API and webhooks show it."""

    id: str
    status: MessageStatus
    direction: str
    to: str
    sender: str | None
    body: str
    category: Category
    encoding: str
    segments: int
    price: Price | None
    client_ref: str | None
    error_code: str | None
    send_at: Timestamp | None
    expires_at: Timestamp | None
    test: bool
    created_at: Timestamp
    updated_at: Timestamp


class MessageEvent(msgspec.Struct, omit_defaults=True):
    """One status change in a message's history."""

    status: MessageStatus
    at: Timestamp
    detail: str | UnsetType = UNSET


class MessageAttempt(msgspec.Struct, omit_defaults=True):
    """A submit that did not go through: which connector, why, and what came next."""

    connector: str
    at: Timestamp
    reason: str
    code: str | UnsetType = UNSET
    detail: str | UnsetType = UNSET
    failover: bool = False


class MessagePart(msgspec.Struct, omit_defaults=True):
    """One segment of a multipart message as the carrier knows it."""

    index: int
    status: MessageStatus
    carrier_message_id: str | UnsetType = UNSET


class MessageDetail(MessageResponse, kw_only=True, omit_defaults=True):
    """A message with its history, its failed submit attempts (each carrier given up and
    why) and, when multipart, its parts."""

    events: list[MessageEvent]
    attempts: list[MessageAttempt] | UnsetType = UNSET
    parts: list[MessagePart] | UnsetType = UNSET


class MessagePage(msgspec.Struct):
    """A page of messages, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[MessageResponse]
    next_cursor: str | None


class MessagePreview(msgspec.Struct, rename={"sender": "from"}):
    """What sending would do, without sending: number, encoding, segments and their cause."""

    to: str
    country: str
    number_type: str
    sender: str | None
    encoding: str
    segments: int
    units: int
    non_gsm_chars: list[str]
    price: Price | None = None


class WebhookEndpointResponse(msgspec.Struct):
    """A webhook endpoint; ``events`` empty means every event type."""

    id: str
    url: str
    events: list[str]
    created_at: Timestamp
    disabled_at: Timestamp | None


class CreatedWebhookEndpoint(WebhookEndpointResponse):
    """A new webhook endpoint with its signing secret, which is never shown again."""

    secret: str


class WebhookEndpointList(msgspec.Struct):
    """All webhook endpoints of the tenant."""

    data: list[WebhookEndpointResponse]
    next_cursor: str | None = None


class Health(msgspec.Struct):
    """Liveness: the process answers."""

    status: str


class Readiness(msgspec.Struct):
    """Readiness: ``ok`` when every dependency is ready, ``unavailable`` otherwise."""

    status: str
    checks: dict[str, bool]


# --- conversions ----------------------------------------------------------------------------


def message_response(message: Message) -> MessageResponse:
    """The public shape of ``message``: ``message_to_dict``'s, made as the struct itself, by
    position (every ``202`` makes one; the dict and its conversion cost about three times
    as much). ``tests/unit/api`` holds the two equal."""
    price = None
    if message.price is not None and message.currency is not None:
        price = Price(Money(message.price, message.currency).as_decimal_string(), message.currency)
    return MessageResponse(
        message.id,  # id
        message.status,  # status
        "outbound" if message.direction is Direction.MT else "inbound",  # direction
        message.to,  # to
        message.sender,  # sender ("from")
        message.body,  # body
        message.category,  # category
        message.encoding,  # encoding
        message.segments,  # segments
        price,  # price
        message.client_ref,  # client_ref
        message.error_code,  # error_code
        iso(message.send_at),  # send_at
        iso(message.expires_at),  # expires_at
        message.is_test,  # test
        iso(message.created_at) or "",  # created_at
        iso(message.updated_at) or "",  # updated_at
    )


def message_detail(message: Message, events: list[EventRecord]) -> MessageDetail:
    """The public shape of ``message`` with its status history and multipart parts."""
    data = message_to_dict(message)
    data["events"] = [
        {"status": event.status.value, "at": iso(event.at)}
        | ({"detail": event.detail} if event.detail else {})
        for event in events
        if event.status is not None
    ]
    attempts = [
        {
            "connector": str(event.payload.get("connector", "")),
            "at": iso(event.at),
            "reason": str(event.payload.get("reason", "")),
            "failover": bool(event.payload.get("failover", False)),
        }
        | ({"code": str(event.payload["code"])} if event.payload.get("code") else {})
        | ({"detail": event.detail} if event.detail else {})
        for event in events
        if event.type == "message.attempt_failed"
    ]
    if attempts:
        data["attempts"] = attempts
    if message.segments > 1 or len(message.parts) > 1:
        data["parts"] = [
            {"index": part.index, "status": part.status.value}
            | ({"carrier_message_id": part.carrier_message_id} if part.carrier_message_id else {})
            for part in sorted(message.parts, key=lambda part: part.index)
        ]
    return msgspec.convert(data, MessageDetail)


def message_preview(preview: Preview) -> MessagePreview:
    """The public shape of a preview."""
    return MessagePreview(
        to=preview.to.e164,
        country=preview.to.country,
        number_type=preview.to.number_type.value,
        sender=preview.sender,
        encoding=preview.encoding,
        segments=preview.segments,
        units=preview.units,
        non_gsm_chars=list(preview.non_gsm_chars),
    )


def endpoint_response(endpoint: WebhookEndpoint) -> WebhookEndpointResponse:
    """The public shape of an endpoint, without its secret."""
    return WebhookEndpointResponse(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        created_at=iso(endpoint.created_at) or "",
        disabled_at=iso(endpoint.disabled_at),
    )


def created_endpoint(endpoint: WebhookEndpoint) -> CreatedWebhookEndpoint:
    """The public shape of a new endpoint, with its secret."""
    return CreatedWebhookEndpoint(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        created_at=iso(endpoint.created_at) or "",
        disabled_at=iso(endpoint.disabled_at),
        secret=endpoint.secret,
    )


# --- identifiers ----------------------------------------------------------------------------

#: What an id of ours can look like (``msg_01J...``); anything else cannot name a resource.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def resource_id(value: str, noun: str) -> str:
    """``value`` if it can be an id at all, else ``NotFound`` (before any store sees it)."""
    if not ID_PATTERN.match(value):
        raise NotFound(f"No {noun} with that id.", field="id")
    return value


# --- decoding -------------------------------------------------------------------------------

T = TypeVar("T", bound=msgspec.Struct)

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")


def decode_body(raw: bytes, schema: type[T]) -> T:
    """Decode a JSON request body strictly into ``schema``.

    Raises ``ApiError`` 400 ``malformed_json`` for bytes that are not JSON, and 422
    ``ValidationError``s (``invalid_request``, ``unknown_field``, ``missing_field``,
    ``invalid_field``) for JSON of the wrong shape.
    """
    if not raw.strip():
        raise ValidationError(
            "The request body is empty; send a JSON object.", code="invalid_request"
        )
    try:
        value = msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as exc:
        raise _shape_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None
    # A NUL reaches a decoded string only as the escape ``\u0000`` (JSON forbids it raw):
    # without those bytes in the body there is nothing to look for, field by field.
    if raw.find(b"\\u0000") != -1:  # ``in`` raises and clears a TypeError first
        _refuse_nul(value)
    return value


def _shape_error(message: str) -> ValidationError:
    """Turn msgspec's validation message into a problem with a code and a field path."""
    at = _AT.search(message)
    path = at.group("path") if at else ""
    text = message[: at.start()] if at else message
    prefix = path.lstrip(".")
    if unknown := _UNKNOWN.match(text):
        field = _join(prefix, unknown.group("name"))
        return ValidationError(f"Unknown field {field!r}.", code="unknown_field", field=field)
    if missing := _MISSING.match(text):
        field = _join(prefix, missing.group("name"))
        return ValidationError(
            f"The field {field!r} is required.", code="missing_field", field=field
        )
    if not prefix:
        return ValidationError(f"{text}: send a JSON object.", code="invalid_request")
    text = text.replace("`", "'")
    return ValidationError(f"{prefix}: {text}.", code="invalid_field", field=prefix)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _refuse_nul(value: msgspec.Struct) -> None:
    """NUL characters cannot be stored (PostgreSQL text) nor sent; refuse them up front."""
    for name, label in zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True):
        field = getattr(value, name)
        texts = field if isinstance(field, list) else [field]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValidationError(
                f"{label} contains a NUL character.", code="invalid_field", field=label
            )
