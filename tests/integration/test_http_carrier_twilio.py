"""The Twilio-style connector against a real HTTP server playing Twilio, and Twilio's signed
status and inbound callbacks sent to the connector's handlers over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from pigeon.connectors.http import (
    CarrierCallback,
    TwilioStyleConnector,
    TwilioStyleSettings,
)
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import PermanentFailure, Throttled
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.testing import FakeClock
from support.fake_carrier import callback_server, serve

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-secret"
MESSAGES_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"

Handler = Callable[[web.Request], Awaitable[web.Response]]


def message(sender: str | None = "+14155550100", **extra: Any) -> Message:
    """An outbound message ready to dispatch."""
    body = "Your code is 123456"
    info = analyse(body)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return Message(
        id="msg_01TWILIO",
        tenant_id="ten_test",
        direction=Direction.MT,
        to="+447700900123",
        sender=sender,
        body=body,
        category=Category.OTP,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
        **extra,
    )


@dataclass
class Twilio:
    """The fake Twilio: checks auth and path, records the form, answers with ``reply``."""

    url: str = ""
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    reply: Handler | None = None


@dataclass
class Pigeon:
    """Our side: the handlers mounted as the REST layer will, and what reached the sinks."""

    url: str = ""
    connector: TwilioStyleConnector | None = None
    receipts: list[DeliveryReceipt] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    sink_fails: int = 0


@pytest.fixture
async def twilio() -> AsyncIterator[Twilio]:
    """A fake Twilio Messages API on an ephemeral loopback port."""
    state = Twilio()

    async def create(request: web.Request) -> web.Response:
        if request.path != MESSAGES_PATH:
            return web.json_response({"code": 20404, "message": "not found"}, status=404)
        assert request.content_type == "application/x-www-form-urlencoded"
        state.auth.append(request.headers.get("Authorization", ""))
        state.forms.append(parse_qs((await request.read()).decode(), keep_blank_values=True))
        if state.reply is not None:
            return await state.reply(request)
        return web.json_response(
            {"sid": f"SM{len(state.forms):032x}", "status": "queued"}, status=201
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", create)
    runner, state.url = await serve(app)
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def pigeon() -> AsyncIterator[Pigeon]:
    """Our callback endpoints, delegating to ``pigeon.connector``'s handlers."""
    state = Pigeon()
    async with callback_server(lambda: state.connector) as state.url:
        yield state


Connect = Callable[..., Awaitable[TwilioStyleConnector]]


@pytest.fixture
async def connect(twilio: Twilio, pigeon: Pigeon) -> AsyncIterator[Connect]:
    """Builds the started connector (Pigeon's callback base URL set); stopped afterwards."""
    made: list[TwilioStyleConnector] = []

    async def receipt_sink(receipt: DeliveryReceipt) -> None:
        if pigeon.sink_fails:
            pigeon.sink_fails -= 1
            raise RuntimeError("store unavailable")
        pigeon.receipts.append(receipt)

    async def mo_sink(inbound: InboundMessage) -> None:
        pigeon.inbound.append(inbound)

    async def build(**overrides: Any) -> TwilioStyleConnector:
        settings = TwilioStyleSettings(
            **{
                "id": "tw",
                "account_sid": SID,
                "auth_token": TOKEN,
                "base_url": twilio.url,
                "callback_base_url": pigeon.url,
                **overrides,
            }
        )
        connector = TwilioStyleConnector(settings, receipt_sink, FakeClock(), mo_sink=mo_sink)
        await connector.start()
        made.append(connector)
        pigeon.connector = connector
        return connector

    try:
        yield build
    finally:
        for connector in made:
            await connector.stop()


async def _post_signed(
    url: str, params: dict[str, str], *, token: str = TOKEN, signature: str | None = None
) -> tuple[int, bytes, str]:
    """POST ``params`` to ``url`` as Twilio does, signed with ``token`` (or ``signature``)."""
    signed = signature or RequestValidator(token).compute_signature(url, params)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=params, headers={"X-Twilio-Signature": signed}) as response,
    ):
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_submit_posts_the_messages_form_with_basic_auth(
    twilio: Twilio, pigeon: Pigeon, connect: Connect
) -> None:
    """To, From, Body and StatusCallback are posted as a form with sid:token Basic auth."""
    connector = await connect()

    result = await connector.submit(message())

    assert result.carrier_message_ids == (f"SM{1:032x}",)
    assert twilio.auth == ["Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()]
    assert twilio.forms == [
        {
            "To": ["+447700900123"],
            "From": ["+14155550100"],
            "Body": ["Your code is 123456"],
            "StatusCallback": [f"{pigeon.url}/v1/carriers/tw/receipts"],
        }
    ]


async def test_submit_uses_the_messaging_service_and_api_key_when_configured(
    twilio: Twilio, connect: Connect
) -> None:
    """Without a sender, MessagingServiceSid is sent; an API key replaces sid:token auth."""
    connector = await connect(
        messaging_service_sid="MG123", api_key_sid="SK123", api_key_secret="key-secret"
    )

    await connector.submit(message(sender=None))

    [form] = twilio.forms
    assert form["MessagingServiceSid"] == ["MG123"]
    assert "From" not in form
    assert twilio.auth == ["Basic " + base64.b64encode(b"SK123:key-secret").decode()]


async def test_submit_without_any_sender_fails_before_calling_the_carrier(
    twilio: Twilio, connect: Connect
) -> None:
    """No sender, no default and no messaging service: PermanentFailure http_no_sender."""
    connector = await connect()
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message(sender=None))
    assert caught.value.code == "http_no_sender"
    assert twilio.forms == []


async def test_submit_sends_the_validity_left_in_seconds(twilio: Twilio, connect: Connect) -> None:
    """A message valid for 10 more minutes carries ValidityPeriod=600."""
    connector = await connect()
    expires = datetime(2026, 1, 1, 12, 10, tzinfo=UTC)  # FakeClock starts at 12:00

    await connector.submit(message(expires_at=expires))

    assert twilio.forms[0]["ValidityPeriod"] == ["600"]


async def test_a_twilio_error_is_permanent_with_its_code_and_message(
    twilio: Twilio, connect: Connect
) -> None:
    """400 {"code": 21211, "message": ...} gives PermanentFailure http_4xx:21211."""

    async def invalid(request: web.Request) -> web.Response:
        body = {"code": 21211, "message": "The 'To' number is not valid.", "status": 400}
        return web.json_response(body, status=400)

    twilio.reply = invalid
    connector = await connect()
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_4xx:21211"
    assert "The 'To' number is not valid." in caught.value.detail


async def test_twilio_rate_limiting_throttles(twilio: Twilio, connect: Connect) -> None:
    """429 {"code": 20429} gives Throttled http_429:20429."""

    async def too_many(request: web.Request) -> web.Response:
        body = {"code": 20429, "message": "Too Many Requests"}
        return web.json_response(body, status=429, headers={"Retry-After": "1"})

    twilio.reply = too_many
    connector = await connect()
    with pytest.raises(Throttled) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_429:20429"


async def test_a_signed_status_callback_reaches_the_sink_before_the_204(
    twilio: Twilio, pigeon: Pigeon, connect: Connect
) -> None:
    """Twilio posts a signed status to the StatusCallback it was given: one receipt, 204."""
    connector = await connect()
    result = await connector.submit(message())
    [sid] = result.carrier_message_ids
    callback_url = twilio.forms[0]["StatusCallback"][0]
    params = {
        "AccountSid": SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "To": "+447700900123",
        "From": "+14155550100",
        "ApiVersion": "2010-04-01",
    }

    status, body, _ = await _post_signed(callback_url, params)

    assert (status, body) == (204, b"")
    assert pigeon.receipts == [
        DeliveryReceipt("tw", sid, ReceiptStatus.DELIVRD, None, at=FakeClock().now())
    ]


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "bm90IGEgc2lnbmF0dXJl",
        RequestValidator("another-token").compute_signature("http://x/", {}),
    ],
    ids=["missing", "garbage", "other-token"],
)
async def test_a_status_callback_with_a_bad_signature_is_refused(
    pigeon: Pigeon, connect: Connect, signature: str
) -> None:
    """A missing or wrong X-Twilio-Signature gives 403 and nothing reaches the sink."""
    await connect()
    url = f"{pigeon.url}/v1/carriers/tw/receipts"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as response,
    ):
        assert response.status == 403
    assert pigeon.receipts == []


async def test_a_tampered_status_callback_is_refused(pigeon: Pigeon, connect: Connect) -> None:
    """A signature made for "undelivered" does not cover "delivered": 403, no receipt."""
    await connect()
    url = f"{pigeon.url}/v1/carriers/tw/receipts"
    signed = RequestValidator(TOKEN).compute_signature(
        url, {"MessageSid": "SM1", "MessageStatus": "undelivered"}
    )

    status, _, _ = await _post_signed(
        url, {"MessageSid": "SM1", "MessageStatus": "delivered"}, signature=signed
    )

    assert status == 403
    assert pigeon.receipts == []


@pytest.mark.parametrize(
    ("twilio_status", "error", "expected", "error_code"),
    [
        ("queued", "", ReceiptStatus.ACCEPTD, None),
        ("sent", "", ReceiptStatus.ENROUTE, None),
        ("delivered", "0", ReceiptStatus.DELIVRD, None),
        ("undelivered", "30003", ReceiptStatus.UNDELIV, "30003"),
        ("failed", "30007", ReceiptStatus.REJECTD, "30007"),
        ("canceled", "", ReceiptStatus.DELETED, None),
    ],
)
async def test_twilio_statuses_map_onto_receipt_statuses(
    pigeon: Pigeon,
    connect: Connect,
    twilio_status: str,
    error: str,
    expected: ReceiptStatus,
    error_code: str | None,
) -> None:
    """Each MessageStatus (and its ErrorCode) becomes the matching receipt."""
    await connect()
    params = {"MessageSid": "SM9", "MessageStatus": twilio_status}
    if error:
        params["ErrorCode"] = error

    status, _, _ = await _post_signed(f"{pigeon.url}/v1/carriers/tw/receipts", params)

    assert status == 204
    [receipt] = pigeon.receipts
    assert (receipt.status, receipt.error_code) == (expected, error_code)


async def test_an_unknown_status_is_acknowledged_and_ignored(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A status we have no mapping for gives 204 and no receipt."""
    await connect()
    params = {"MessageSid": "SM9", "MessageStatus": "receiving"}

    status, _, _ = await _post_signed(f"{pigeon.url}/v1/carriers/tw/receipts", params)

    assert status == 204
    assert pigeon.receipts == []


async def test_a_failing_sink_asks_twilio_to_retry(pigeon: Pigeon, connect: Connect) -> None:
    """If the receipt cannot be stored the answer is 503; the resent callback is applied."""
    await connect()
    pigeon.sink_fails = 1
    url = f"{pigeon.url}/v1/carriers/tw/receipts"
    params = {"MessageSid": "SM9", "MessageStatus": "delivered"}

    first, _, _ = await _post_signed(url, params)
    second, _, _ = await _post_signed(url, params)

    assert (first, second) == (503, 204)
    assert [r.carrier_message_id for r in pigeon.receipts] == ["SM9"]


async def test_a_status_callback_without_its_fields_is_a_bad_request(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A signed callback lacking MessageSid/MessageStatus gives 400."""
    await connect()

    status, _, _ = await _post_signed(f"{pigeon.url}/v1/carriers/tw/receipts", {"Foo": "bar"})

    assert status == 400
    assert pigeon.receipts == []


async def test_a_signed_inbound_message_reaches_the_mo_sink_with_empty_twiml(
    pigeon: Pigeon, connect: Connect
) -> None:
    """Twilio's inbound webhook form becomes an InboundMessage; the answer is empty TwiML."""
    await connect()
    params = {
        "MessageSid": "SMin1",
        "AccountSid": SID,
        "From": "+447700900123",
        "To": "+14155550100",
        "Body": "STOP ",
        "NumMedia": "0",
    }

    status, body, content_type = await _post_signed(f"{pigeon.url}/v1/carriers/tw/inbound", params)

    assert status == 200
    assert content_type.startswith("text/xml")
    assert body.endswith(b"<Response></Response>")
    assert pigeon.inbound == [
        InboundMessage("tw", "+447700900123", "+14155550100", "STOP ", FakeClock().now())
    ]


async def test_an_unsigned_inbound_message_is_refused(pigeon: Pigeon, connect: Connect) -> None:
    """An inbound post signed with the wrong token gives 403 and reaches no sink."""
    await connect()
    params = {"MessageSid": "SMin1", "From": "+447700900123", "To": "+1415", "Body": "hi"}

    status, _, _ = await _post_signed(f"{pigeon.url}/v1/carriers/tw/inbound", params, token="wrong")

    assert status == 403
    assert pigeon.inbound == []


async def test_callbacks_must_be_posts(pigeon: Pigeon, connect: Connect) -> None:
    """A GET to the callback URLs gives 405."""
    await connect()
    async with aiohttp.ClientSession() as session:
        for kind in ("receipts", "inbound"):
            async with session.get(f"{pigeon.url}/v1/carriers/tw/{kind}") as response:
                assert response.status == 405


async def test_a_signature_over_the_public_url_is_accepted_behind_a_proxy() -> None:
    """Signed for https://sms.example.com/..., received on an internal URL: still valid."""
    receipts: list[DeliveryReceipt] = []

    async def sink(receipt: DeliveryReceipt) -> None:
        receipts.append(receipt)

    settings = TwilioStyleSettings(
        id="tw", account_sid=SID, auth_token=TOKEN, callback_base_url="https://sms.example.com"
    )
    connector = TwilioStyleConnector(settings, sink, FakeClock())
    params = {"MessageSid": "SM7", "MessageStatus": "sent"}
    public = "https://sms.example.com/v1/carriers/tw/receipts"
    signature = RequestValidator(TOKEN).compute_signature(public, params)

    result = await connector.handle_receipt_callback(
        CarrierCallback(
            "POST",
            "http://10.0.0.5:8080/v1/carriers/tw/receipts",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "x-twilio-signature": signature,
            },
            urlencode(params).encode(),
        )
    )

    assert result.status == 204
    assert [r.status for r in receipts] == [ReceiptStatus.ENROUTE]


async def test_a_json_body_is_covered_by_its_bodysha256_parameter() -> None:
    """For a JSON body, the signature covers the URL and bodySHA256 must hash the body."""

    async def sink(receipt: DeliveryReceipt) -> None:
        raise AssertionError("not called")

    connector = TwilioStyleConnector(
        TwilioStyleSettings(id="tw", account_sid=SID, auth_token=TOKEN), sink, FakeClock()
    )
    body = json.dumps({"MessageSid": "SM1", "MessageStatus": "delivered"}).encode()
    url = f"https://p.example/v1/carriers/tw/receipts?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}

    assert connector.signature_valid(CarrierCallback("POST", url, headers, body))
    assert not connector.signature_valid(CarrierCallback("POST", url, headers, body + b" "))
