"""``/v1/messages``: send, preview, read and list messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import HeaderParameter, PathParameter, QueryParameter

from pigeon.api.dependencies import ApiServices, CurrentCaller, Services
from pigeon.api.problems import BODY_PROBLEMS, ApiError, problem_responses
from pigeon.api.schemas import (
    ID_PATTERN,
    MessageDetail,
    MessagePage,
    MessagePreview,
    MessageResponse,
    SendMessageRequest,
    decode_body,
    message_detail,
    message_preview,
    message_response,
    resource_id,
)
from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.errors import InvalidRecipient
from pigeon.domain.messages import MessageStatus
from pigeon.ports import AcceptResult, MessageQuery
from pigeon.services.accept import SendRequest
from pigeon.services.authenticate import Caller
from pigeon.services.queries import MAX_PAGE
from pigeon.services.webhook_endpoints import check_url

MAX_IDEMPOTENCY_KEY = 255
MessageId = Annotated[str, PathParameter(description="The message id, `msg_...`.")]
TAGS = ["Messages"]
SEND_PROBLEMS = (
    "unauthorized",
    *BODY_PROBLEMS,
    "unsupported_field",
    "invalid_recipient",
    "invalid_sender",
    "invalid_body",
    "body_too_long",
    "invalid_country",
    "invalid_url",
)


def _send_request(raw: bytes) -> SendRequest:
    request = decode_body(raw, SendMessageRequest).to_send_request()
    if request.callback_url is not None:
        # AcceptMessage stores callback_url as given; the webhook URL rules apply to it too.
        request = replace(request, callback_url=check_url(request.callback_url, "callback_url"))
    return request


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
            field="Idempotency-Key",
        )
    return key


@dataclass(frozen=True, slots=True)
class Sent:
    """What ``POST /v1/messages`` answers with ``202``: the message and the extra headers."""

    message: MessageResponse
    #: ``Location``, then ``Idempotent-Replayed: true`` on a replay.
    headers: dict[str, str]


async def send_one(
    caller: Caller,
    services: ApiServices,
    idempotency_key: str | None,
    read_body: Callable[[], Awaitable[bytes]],
) -> Sent:
    """``POST /v1/messages`` once the caller is authenticated, for every HTTP layer.

    The Litestar route below and the fast path (``pigeon.api.fast_accept``) both call this;
    ``idempotency_key`` is the header's raw (first) value, and the body is read only after it
    passed. Raises ``PigeonError``s (rendered as problems) and whatever ``read_body`` raises.
    """
    key = _idempotency_key(idempotency_key)
    request = _send_request(await read_body())
    return _sent(await services.accept(caller, request, idempotency_key=key))


def start_send_one(
    caller: Caller, services: ApiServices, idempotency_key: str | None, body: bytes
) -> Awaitable[Sent] | None:
    """``send_one`` with its whole ``body``, handed to the store now: what to await for the
    answer. Raises what ``send_one`` raises before the store; ``None``, with nothing done,
    when the accept cannot start at once (then ``send_one``)."""
    key = _idempotency_key(idempotency_key)
    request = _send_request(body)
    accepting = services.accept.start(caller, request, idempotency_key=key)
    return None if accepting is None else _sent_when(accepting)


async def _sent_when(accepting: Awaitable[AcceptResult]) -> Sent:
    return _sent(await accepting)


def _sent(result: AcceptResult) -> Sent:
    headers = {"Location": f"/v1/messages/{result.message.id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Sent(message_response(result.message), headers)


@post(
    "/messages",
    operation_id="sendMessage",
    status_code=202,
    tags=TAGS,
    summary="Send a message",
    description=(
        "Validates, normalises and durably stores the message, then answers `202` with it "
        "(status `queued`, or `scheduled` with a future `send_at`). With an `Idempotency-Key` "
        "a retried request answers the first message again (header `Idempotent-Replayed: "
        "true`) and sends nothing twice; the same key with a different body is a `422`."
    ),
    opt={"request_body": SendMessageRequest},
    responses=problem_responses(
        *SEND_PROBLEMS,
        "invalid_send_at",
        "invalid_validity",
        "idempotency_key_reused",
        "invalid_idempotency_key",
    ),
)
async def send_message(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    services: Services,
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name="Idempotency-Key",
            description="Up to 255 characters; the same key and body never send twice.",
        ),
    ] = None,
) -> Response[MessageResponse]:
    """Accept one message for sending."""
    sent = await send_one(caller, services, idempotency_key, request.body)
    return Response(sent.message, status_code=202, headers=sent.headers)


@post(
    "/messages/preview",
    operation_id="previewMessage",
    status_code=200,
    tags=TAGS,
    summary="Preview a message",
    description=(
        "Takes the same body as sending and sends nothing: the normalised number and its type, "
        "the encoding, the segments and the characters that forced UCS-2."
    ),
    opt={"request_body": SendMessageRequest},
    responses=problem_responses(*SEND_PROBLEMS),
)
async def preview_message(
    request: Request[Any, Any, Any], caller: CurrentCaller, services: Services
) -> MessagePreview:
    """Show what sending would do."""
    send = _send_request(await request.body())
    return message_preview(services.accept.preview(caller, send))


@get(
    "/messages/{message_id:str}",
    operation_id="getMessage",
    tags=TAGS,
    summary="Get a message",
    description="The message with its status history and, when multipart, its parts.",
    responses=problem_responses("unauthorized", "not_found", "invalid_parameter"),
)
async def get_message(
    caller: CurrentCaller, services: Services, message_id: MessageId
) -> MessageDetail:
    """One message of the caller's tenant."""
    message, events = await services.read.get(caller, resource_id(message_id, "message"))
    return message_detail(message, events)


@get(
    "/messages",
    operation_id="listMessages",
    tags=TAGS,
    summary="List messages",
    description=(
        "The tenant's messages, newest first, filtered; pass `next_cursor` back as `cursor` "
        "for the next page (`null` on the last). With `created_after` or `created_before` and "
        "no `to`, newest first means by creation time. A request reads at most 10,000 "
        "messages to fill a page filtered by `status`, so such a page may hold fewer than "
        "`limit` messages, even none, while `next_cursor` is not `null`: follow it until it is."
    ),
    responses=problem_responses("unauthorized", "invalid_parameter"),
)
async def list_messages(
    caller: CurrentCaller,
    services: Services,
    status: Annotated[
        MessageStatus | None, QueryParameter(description="Only messages with this status.")
    ] = None,
    to: Annotated[
        str | None,
        QueryParameter(
            description="Only messages to this number (normalised like `to` in a send)."
        ),
    ] = None,
    created_after: Annotated[
        datetime | None,
        QueryParameter(
            description="Only messages created at or after this ISO-8601 time (with zone)."
        ),
    ] = None,
    created_before: Annotated[
        datetime | None,
        QueryParameter(description="Only messages created before this ISO-8601 time (with zone)."),
    ] = None,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_PAGE, description=f"Page size, 1 to {MAX_PAGE}.")
    ] = 50,
    cursor: Annotated[
        str | None,
        QueryParameter(description="`next_cursor` of the previous page."),
    ] = None,
) -> MessagePage:
    """A page of the caller's messages."""
    query = MessageQuery(
        status=status,
        to=_recipient_filter(to, caller),
        created_from=_aware(created_after, "created_after"),
        created_to=_aware(created_before, "created_before"),
        limit=limit,
        cursor=_cursor(cursor),
    )
    page = await services.read.list(caller, query)
    return MessagePage(
        data=[message_response(message) for message in page.messages],
        next_cursor=page.next_cursor,
    )


def _cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    if not ID_PATTERN.match(cursor):
        raise ApiError(
            400, "invalid_parameter", "cursor is not a next_cursor value.", field="cursor"
        )
    return cursor


def _recipient_filter(to: str | None, caller: CurrentCaller) -> str | None:
    if to is None or not to.strip():
        return None
    try:
        return parse_msisdn(to, caller.tenant.default_region).e164
    except InvalidRecipient as exc:
        raise ApiError(400, "invalid_parameter", exc.detail, field="to") from None


def _aware(moment: datetime | None, field: str) -> datetime | None:
    if moment is not None and moment.utcoffset() is None:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{field} needs a time zone, e.g. 2026-01-31T09:00:00Z.",
            field=field,
        )
    return None if moment is None else moment.astimezone(UTC)


ROUTES = [send_message, preview_message, get_message, list_messages]
