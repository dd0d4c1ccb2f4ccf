"""The Infobip-style connector against a real HTTP server playing Infobip, and its batched
delivery reports and inbound messages sent to the connector's handlers over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pigeon.connectors.http import (
    InfobipStyleConnector,
    InfobipStyleSettings,
)
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import PermanentFailure, TemporaryFailure
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.testing import FakeClock
from support.fake_carrier import callback_server, serve

API_KEY = "infobip-api-key-secret"
CALLBACK_SECRET = "callback-shared-secret"
NOW = FakeClock().now()

Handler = Callable[[web.Request], Awaitable[web.Response]]


def message(sender: str | None = "Pigeon", **extra: Any) -> Message:
    """An outbound message ready to dispatch."""
    body = "Ihr Code: 123456 ✓"
    info = analyse(body)
    return Message(
        id="msg_01INFOBIP",
        tenant_id="ten_test",
        direction=Direction.MT,
        to="+41793026727",
        sender=sender,
        body=body,
        category=Category.OTP,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=NOW,
        updated_at=NOW,
        **extra,
    )


def accepted(message_id: str, group: str = "PENDING", name: str = "PENDING_ACCEPTED") -> Any:
    """Infobip's answer to a send, for one destination."""
    return {
        "bulkId": "bulk-1",
        "messages": [
            {
                "to": "41793026727",
                "messageId": message_id,
                "status": {"groupId": 1, "groupName": group, "id": 26, "name": name},
            }
        ],
    }


def report(message_id: str, group: str, error_name: str = "NO_ERROR", error_id: int = 0) -> Any:
    """One delivery report as Infobip posts it."""
    return {
        "bulkId": "bulk-1",
        "messageId": message_id,
        "to": "41793026727",
        "sentAt": "2026-01-01T12:00:00.000+0000",
        "doneAt": "2026-01-01T12:00:05.000+0000",
        "smsCount": 1,
        "status": {"groupId": 3, "groupName": group, "id": 5, "name": f"{group}_X"},
        "error": {"groupId": 0, "groupName": "OK", "id": error_id, "name": error_name},
    }


@dataclass
class Infobip:
    """The fake Infobip: checks auth and path, records the JSON, answers with ``reply``."""

    url: str = ""
    bodies: list[Any] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    reply: Handler | None = None


@dataclass
class Pigeon:
    """Our side: the handlers mounted as the REST layer will, and what reached the sinks."""

    url: str = ""
    connector: InfobipStyleConnector | None = None
    receipts: list[DeliveryReceipt] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)


@pytest.fixture
async def infobip() -> AsyncIterator[Infobip]:
    """A fake Infobip SMS API on an ephemeral loopback port."""
    state = Infobip()

    async def send(request: web.Request) -> web.Response:
        if request.path != "/sms/2/text/advanced" or request.method != "POST":
            return web.json_response({}, status=404)
        assert request.content_type == "application/json"
        state.auth.append(request.headers.get("Authorization", ""))
        state.bodies.append(json.loads(await request.read()))
        if state.reply is not None:
            return await state.reply(request)
        return web.json_response(accepted(f"ib-{len(state.bodies)}"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", send)
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


Connect = Callable[..., Awaitable[InfobipStyleConnector]]


@pytest.fixture
async def connect(infobip: Infobip, pigeon: Pigeon) -> AsyncIterator[Connect]:
    """Builds the started connector (Pigeon's callback base URL set); stopped afterwards."""
    made: list[InfobipStyleConnector] = []

    async def receipt_sink(receipt: DeliveryReceipt) -> None:
        pigeon.receipts.append(receipt)

    async def mo_sink(inbound: InboundMessage) -> None:
        pigeon.inbound.append(inbound)

    async def build(**overrides: Any) -> InfobipStyleConnector:
        settings = InfobipStyleSettings(
            **{
                "id": "ib",
                "base_url": infobip.url,
                "api_key": API_KEY,
                "callback_base_url": pigeon.url,
                **overrides,
            }
        )
        connector = InfobipStyleConnector(settings, receipt_sink, FakeClock(), mo_sink=mo_sink)
        await connector.start()
        made.append(connector)
        pigeon.connector = connector
        return connector

    try:
        yield build
    finally:
        for connector in made:
            await connector.stop()


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> int:
    """POST ``body`` as JSON (or raw bytes) to ``url`` as the carrier does; the status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        ) as response,
    ):
        return response.status


async def test_submit_posts_the_advanced_json_with_app_auth(
    infobip: Infobip, pigeon: Pigeon, connect: Connect
) -> None:
    """The exact JSON body is posted with "Authorization: App <key>"; messageId comes back."""
    connector = await connect()

    result = await connector.submit(message())

    assert result.carrier_message_ids == ("ib-1",)
    assert infobip.auth == [f"App {API_KEY}"]
    assert infobip.bodies == [
        {
            "messages": [
                {
                    "destinations": [{"to": "41793026727"}],
                    "from": "Pigeon",
                    "text": "Ihr Code: 123456 ✓",
                    "notifyUrl": f"{pigeon.url}/v1/carriers/ib/receipts",
                    "notifyContentType": "application/json",
                }
            ]
        }
    ]


async def test_submit_without_callback_or_sender_leaves_those_out(infobip: Infobip) -> None:
    """No callback_base_url, no sender: only destinations and text, plus the validity."""

    async def sink(receipt: DeliveryReceipt) -> None:
        raise AssertionError("no receipt expected")

    settings = InfobipStyleSettings(id="ib", base_url=infobip.url, api_key=API_KEY)
    connector = InfobipStyleConnector(settings, sink, FakeClock())
    await connector.start()
    try:
        await connector.submit(
            message(sender=None, expires_at=datetime(2026, 1, 1, 13, 0, tzinfo=UTC))
        )
    finally:
        await connector.stop()

    assert infobip.bodies == [
        {
            "messages": [
                {
                    "destinations": [{"to": "41793026727"}],
                    "text": "Ihr Code: 123456 ✓",
                    "validityPeriod": 60,
                }
            ]
        }
    ]


async def test_a_rejected_message_is_a_permanent_failure(
    infobip: Infobip, connect: Connect
) -> None:
    """A 200 whose status group is REJECTED gives PermanentFailure http_rejected:<name>."""

    async def reject(request: web.Request) -> web.Response:
        return web.json_response(accepted("ib-x", "REJECTED", "REJECTED_DESTINATION"))

    infobip.reply = reject
    connector = await connect()
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_rejected:REJECTED_DESTINATION"


async def test_running_out_of_credit_is_temporary(infobip: Infobip, connect: Connect) -> None:
    """REJECTED_NOT_ENOUGH_CREDITS concerns our account: TemporaryFailure, so re-routable."""

    async def broke(request: web.Request) -> web.Response:
        return web.json_response(accepted("ib-x", "REJECTED", "REJECTED_NOT_ENOUGH_CREDITS"))

    infobip.reply = broke
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_rejected:REJECTED_NOT_ENOUGH_CREDITS"


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        (400, PermanentFailure, "http_4xx:BAD_REQUEST"),
        (401, TemporaryFailure, "http_auth:UNAUTHORIZED"),
        (500, TemporaryFailure, "http_5xx:GENERAL_ERROR"),
    ],
)
async def test_infobip_request_errors_carry_their_service_exception_id(
    infobip: Infobip,
    connect: Connect,
    status: int,
    exception: type[Exception],
    code: str,
) -> None:
    """requestError.serviceException.messageId becomes the code suffix, its text the detail."""
    name = code.split(":")[1]

    async def error(request: web.Request) -> web.Response:
        body = {"requestError": {"serviceException": {"messageId": name, "text": "Nope here"}}}
        return web.json_response(body, status=status)

    infobip.reply = error
    connector = await connect()
    with pytest.raises(exception) as caught:
        await connector.submit(message())
    assert getattr(caught.value, "code", None) == code
    assert "Nope here" in str(caught.value)


async def test_a_success_without_message_id_is_a_bad_response(
    infobip: Infobip, connect: Connect
) -> None:
    """A 200 without messages[0].messageId gives TemporaryFailure http_bad_response."""

    async def odd(request: web.Request) -> web.Response:
        return web.json_response({"bulkId": "b", "messages": []})

    infobip.reply = odd
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_bad_response"


async def test_a_batch_of_three_reports_gives_three_receipts(
    infobip: Infobip, pigeon: Pigeon, connect: Connect
) -> None:
    """Infobip posts 3 results to the notifyUrl it was given: 3 receipts, then 200."""
    connector = await connect()
    await connector.submit(message())
    notify_url = infobip.bodies[0]["messages"][0]["notifyUrl"]
    batch = {
        "results": [
            report("ib-1", "DELIVERED"),
            report("ib-2", "UNDELIVERABLE", "EC_ABSENT_SUBSCRIBER", 27),
            report("ib-3", "EXPIRED"),
        ]
    }

    assert await _post(notify_url, batch) == 200

    assert pigeon.receipts == [
        DeliveryReceipt("ib", "ib-1", ReceiptStatus.DELIVRD, None, at=NOW),
        DeliveryReceipt("ib", "ib-2", ReceiptStatus.UNDELIV, "EC_ABSENT_SUBSCRIBER", at=NOW),
        DeliveryReceipt("ib", "ib-3", ReceiptStatus.EXPIRED, None, at=NOW),
    ]


async def test_reports_map_every_status_group(pigeon: Pigeon, connect: Connect) -> None:
    """PENDING, REJECTED and an unknown group map to ENROUTE, REJECTD and nothing."""
    await connect()
    batch = {
        "results": [
            report("a", "PENDING"),
            report("b", "REJECTED", "EC_SPAM", 9),
            report("c", "SOMETHING_NEW"),
            {"status": {"groupName": "DELIVERED"}},
        ]
    }

    assert await _post(f"{pigeon.url}/v1/carriers/ib/receipts", batch) == 200

    assert [(r.carrier_message_id, r.status, r.error_code) for r in pigeon.receipts] == [
        ("a", ReceiptStatus.ENROUTE, None),
        ("b", ReceiptStatus.REJECTD, "EC_SPAM"),
    ]


@pytest.mark.parametrize("body", [b"not json", b'{"nothing": 1}', b'{"results": {}}'])
async def test_unreadable_reports_are_bad_requests(
    pigeon: Pigeon, connect: Connect, body: bytes
) -> None:
    """A body that is not JSON or lacks the results array gives 400."""
    await connect()
    assert await _post(f"{pigeon.url}/v1/carriers/ib/receipts", body) == 400
    assert pigeon.receipts == []


async def test_inbound_messages_reach_the_mo_sink_with_international_numbers(
    pigeon: Pigeon, connect: Connect
) -> None:
    """Each inbound result becomes an InboundMessage; bare MSISDNs get their + back."""
    await connect()
    batch = {
        "results": [
            {
                "messageId": "mo-1",
                "from": "385916242493",
                "to": "385921004026",
                "text": "QUIZ Correct answer is Paris",
                "cleanText": "Correct answer is Paris",
                "keyword": "QUIZ",
                "receivedAt": "2026-01-01T11:59:00.000+0000",
                "smsCount": 1,
            },
            {"messageId": "mo-2", "from": "447700900123", "to": "12345", "text": "STOP"},
        ],
        "messageCount": 2,
        "pendingMessageCount": 0,
    }

    assert await _post(f"{pigeon.url}/v1/carriers/ib/inbound", batch) == 200

    assert pigeon.inbound == [
        InboundMessage("ib", "+385916242493", "+385921004026", "QUIZ Correct answer is Paris", NOW),
        InboundMessage("ib", "+447700900123", "12345", "STOP", NOW),
    ]


async def test_a_configured_secret_header_is_required(pigeon: Pigeon, connect: Connect) -> None:
    """With callback_secret set, a report without or with the wrong secret gets 403."""
    await connect(callback_secret=CALLBACK_SECRET)
    url = f"{pigeon.url}/v1/carriers/ib/receipts"
    batch = {"results": [report("ib-1", "DELIVERED")]}

    assert await _post(url, batch) == 403
    assert await _post(url, batch, {"X-Callback-Secret": "guess"}) == 403
    assert pigeon.receipts == []
    assert await _post(url, batch, {"x-callback-secret": CALLBACK_SECRET}) == 200
    assert len(pigeon.receipts) == 1


async def test_a_secret_in_the_notify_url_authenticates_the_reports(
    infobip: Infobip, pigeon: Pigeon, connect: Connect
) -> None:
    """With callback_secret_param, the notifyUrl carries the secret and reports to it pass."""
    connector = await connect(callback_secret=CALLBACK_SECRET, callback_secret_param="s")
    await connector.submit(message())
    notify_url = infobip.bodies[0]["messages"][0]["notifyUrl"]
    assert notify_url == f"{pigeon.url}/v1/carriers/ib/receipts?s={CALLBACK_SECRET}"

    assert await _post(notify_url, {"results": [report("ib-1", "DELIVERED")]}) == 200
    assert await _post(notify_url.replace(CALLBACK_SECRET, "x"), {"results": []}) == 403
    assert [r.carrier_message_id for r in pigeon.receipts] == ["ib-1"]
    assert CALLBACK_SECRET not in repr(connector.settings)
