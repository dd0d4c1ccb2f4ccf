"""The configurable HTTP connector against a real HTTP server playing the carrier (JSON, form
and query templates), and its configurable receipt and inbound callbacks over real HTTP."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
import pytest
from aiohttp import web

from pigeon.connectors.http import (
    GenericHttpConnector,
    GenericHttpSettings,
)
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.domain.encoding import analyse
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.testing import FakeClock
from support.fake_carrier import callback_server, serve

TOKEN = "generic-token-secret"
PASSWORD = "generic-password-secret"
HMAC_SECRET = "generic-hmac-secret"
NOW = FakeClock().now()

Handler = Callable[[web.Request], Awaitable[web.Response]]


def message(body: str = "Hello {there} & welcome", sender: str | None = "+14155550100") -> Message:
    """An outbound message ready to dispatch."""
    info = analyse(body)
    return Message(
        id="msg_01GENERIC",
        tenant_id="ten_test",
        direction=Direction.MT,
        to="+447700900123",
        sender=sender,
        body=body,
        category=Category.TRANSACTIONAL,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=NOW,
        updated_at=NOW,
    )


@dataclass
class Seen:
    """One request as the fake carrier saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Carrier:
    """The fake carrier: records requests, answers with ``reply``."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    reply: Handler | None = None


@dataclass
class Pigeon:
    """Our side: the handlers mounted as the REST layer will, and what reached the sinks."""

    url: str = ""
    connector: GenericHttpConnector | None = None
    receipts: list[DeliveryReceipt] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    sink_fails: int = 0


@pytest.fixture
async def carrier() -> AsyncIterator[Carrier]:
    """A fake carrier on an ephemeral loopback port."""
    state = Carrier()

    async def any_request(request: web.Request) -> web.Response:
        state.seen.append(
            Seen(
                request.method,
                request.path,
                parse_qs(request.query_string, keep_blank_values=True),
                {k.lower(): v for k, v in request.headers.items()},
                await request.read(),
            )
        )
        assert state.reply is not None
        return await state.reply(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
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


Connect = Callable[..., Awaitable[GenericHttpConnector]]


@pytest.fixture
async def connect(carrier: Carrier, pigeon: Pigeon) -> AsyncIterator[Connect]:
    """Builds a started connector from settings overrides; stopped afterwards."""
    made: list[GenericHttpConnector] = []

    async def receipt_sink(receipt: DeliveryReceipt) -> None:
        if pigeon.sink_fails:
            pigeon.sink_fails -= 1
            raise RuntimeError("store unavailable")
        pigeon.receipts.append(receipt)

    async def mo_sink(inbound: InboundMessage) -> None:
        pigeon.inbound.append(inbound)

    async def build(**settings: Any) -> GenericHttpConnector:
        settings.setdefault("id", "gen")
        settings.setdefault("url", f"{carrier.url}/send")
        settings.setdefault("fields", {"to": "{to}", "text": "{body}"})
        settings.setdefault("callback_base_url", pigeon.url)
        connector = GenericHttpConnector(
            GenericHttpSettings(**settings), receipt_sink, FakeClock(), mo_sink=mo_sink
        )
        await connector.start()
        made.append(connector)
        pigeon.connector = connector
        return connector

    try:
        yield build
    finally:
        for connector in made:
            await connector.stop()


async def _send(
    url: str, *, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Call ``url`` as the carrier does; the status and body of our answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=headers or {}) as response,
    ):
        return response.status, await response.read()


def _json(data: Any) -> dict[str, Any]:
    return {"body": json.dumps(data).encode(), "headers": {"Content-Type": "application/json"}}


def _form(data: dict[str, str]) -> dict[str, Any]:
    return {
        "body": urlencode(data).encode(),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


async def test_a_json_template_is_sent_with_bearer_auth_and_the_id_read_at_its_path(
    carrier: Carrier, pigeon: Pigeon, connect: Connect
) -> None:
    """Nested JSON is filled exactly (numbers stay numbers) and messages.0.id is the id."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"messages": [{"id": 4711, "state": "queued"}]}, status=201)

    carrier.reply = ok
    connector = await connect(
        fields={
            "recipients": [{"msisdn": "{to_digits}"}],
            "originator": "{from}",
            "content": {"text": "{body}", "parts": "{segments}"},
            "reference": "{message_id}",
            "report_url": "{callback_url}",
            "flash": False,
        },
        headers={"X-Tenant": "acme"},
        auth="bearer",
        token=TOKEN,
        id_path="messages.0.id",
    )

    result = await connector.submit(message())

    assert result.carrier_message_ids == ("4711",)
    [seen] = carrier.seen
    assert (seen.method, seen.path) == ("POST", "/send")
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["x-tenant"] == "acme"
    assert seen.headers["content-type"].startswith("application/json")
    assert json.loads(seen.body) == {
        "recipients": [{"msisdn": "447700900123"}],
        "originator": "+14155550100",
        "content": {"text": "Hello {there} & welcome", "parts": 1},
        "reference": "msg_01GENERIC",
        "report_url": f"{pigeon.url}/v1/carriers/gen/receipts",
        "flash": False,
    }


async def test_a_form_template_is_sent_with_basic_auth_and_our_id_as_reference(
    carrier: Carrier, connect: Connect
) -> None:
    """Form fields are filled exactly; with id_path=None our message id is the carrier id."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=202, text="accepted")

    carrier.reply = ok
    connector = await connect(
        body_format="form",
        fields={"dst": "{to_digits}", "src": "{from}", "msg": "{body}", "ref": "{message_id}"},
        auth="basic",
        username="acme",
        password=PASSWORD,
        id_path=None,
    )

    result = await connector.submit(message(body="Grüße ✓"))

    assert result.carrier_message_ids == ("msg_01GENERIC",)
    [seen] = carrier.seen
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"acme:{PASSWORD}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert parse_qs(seen.body.decode()) == {
        "dst": ["447700900123"],
        "src": ["+14155550100"],
        "msg": ["Grüße ✓"],
        "ref": ["msg_01GENERIC"],
    }


async def test_a_get_template_puts_fields_and_url_placeholders_in_the_query(
    carrier: Carrier, connect: Connect
) -> None:
    """A Kannel-like GET: URL placeholders are percent-encoded, fields become the query."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"result": {"message_id": "k-1"}})

    carrier.reply = ok
    connector = await connect(
        method="GET",
        url=f"{carrier.url}/cgi-bin/sendsms/{{to}}",
        fields={"user": "{username}", "pass": "{password}", "text": "{body}", "coding": "2"},
        username="acme",
        password=PASSWORD,
        auth="header",
        auth_header="X-Api-Key",
        token=TOKEN,
        id_path="result.message_id",
    )

    result = await connector.submit(message(body="a&b=c"))

    assert result.carrier_message_ids == ("k-1",)
    [seen] = carrier.seen
    assert seen.method == "GET"
    assert seen.path == "/cgi-bin/sendsms/+447700900123"
    assert seen.query == {
        "user": ["acme"],
        "pass": [PASSWORD],
        "text": ["a&b=c"],
        "coding": ["2"],
    }
    assert seen.headers["x-api-key"] == TOKEN
    assert seen.body == b""


async def test_a_single_json_receipt_reaches_the_sink(pigeon: Pigeon, connect: Connect) -> None:
    """{"id", "status", "error"} posted to our receipts URL becomes one receipt, then 200."""
    await connect()

    status, _ = await _send(
        f"{pigeon.url}/v1/carriers/gen/receipts",
        **_json({"id": "c-1", "status": "Undelivered", "error": 27}),
    )

    assert status == 200
    assert pigeon.receipts == [DeliveryReceipt("gen", "c-1", ReceiptStatus.UNDELIV, "27", at=NOW)]


async def test_a_json_batch_is_read_at_its_items_path_with_a_custom_status_map(
    pigeon: Pigeon, connect: Connect
) -> None:
    """Reports at data.reports with nested fields and carrier words map through the table."""
    await connect(
        receipt_items_path="data.reports",
        receipt_id_field="msg.id",
        receipt_status_field="state.code",
        receipt_error_field="state.reason",
        receipt_status_map={"D": ReceiptStatus.DELIVRD, "F": ReceiptStatus.UNDELIV},
    )
    reports = [
        {"msg": {"id": "x1"}, "state": {"code": "D", "reason": None}},
        {"msg": {"id": "x2"}, "state": {"code": "f", "reason": "absent"}},
        {"msg": {"id": "x3"}, "state": {"code": "Z"}},
        {"state": {"code": "D"}},
    ]

    status, _ = await _send(
        f"{pigeon.url}/v1/carriers/gen/receipts", **_json({"data": {"reports": reports}})
    )

    assert status == 200
    assert [(r.carrier_message_id, r.status, r.error_code) for r in pigeon.receipts] == [
        ("x1", ReceiptStatus.DELIVRD, None),
        ("x2", ReceiptStatus.UNDELIV, "absent"),
    ]


async def test_form_receipts_come_from_the_body_or_the_query(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A form POST and a Kannel-style GET with dlr type 1 both become receipts."""
    await connect(
        receipt_format="form",
        receipt_id_field="smsid",
        receipt_status_field="dlr",
        receipt_error_field="err",
        callback_ok_body="OK",
    )
    url = f"{pigeon.url}/v1/carriers/gen/receipts"

    posted = await _send(url, **_form({"smsid": "f-1", "dlr": "2", "err": "000"}))
    got = await _send(f"{url}?smsid=f-2&dlr=1", method="GET")

    assert posted == got == (200, b"OK")
    assert pigeon.receipts == [
        DeliveryReceipt("gen", "f-1", ReceiptStatus.UNDELIV, None, at=NOW),
        DeliveryReceipt("gen", "f-2", ReceiptStatus.DELIVRD, None, at=NOW),
    ]


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"body": b"{not json", "headers": {"Content-Type": "application/json"}},
        _json({"status": "delivered"}),
        _json(["not", "an", "object"]),
    ],
    ids=["garbage", "no-id", "array"],
)
async def test_an_unreadable_single_receipt_is_a_bad_request(
    pigeon: Pigeon, connect: Connect, request_kwargs: dict[str, Any]
) -> None:
    """Garbage, a report without id, or no object at all gives 400 and no receipt."""
    await connect()
    status, _ = await _send(f"{pigeon.url}/v1/carriers/gen/receipts", **request_kwargs)
    assert status == 400
    assert pigeon.receipts == []


async def test_an_unmapped_status_is_acknowledged_and_ignored(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A status word the map does not know gives 200 and no receipt."""
    await connect()
    status, _ = await _send(
        f"{pigeon.url}/v1/carriers/gen/receipts", **_json({"id": "c-1", "status": "weird"})
    )
    assert status == 200
    assert pigeon.receipts == []


async def test_a_failing_sink_gets_a_503_so_the_carrier_retries(
    pigeon: Pigeon, connect: Connect
) -> None:
    """When the receipt cannot be stored the answer is 503, and the resend is applied."""
    await connect()
    pigeon.sink_fails = 1
    url = f"{pigeon.url}/v1/carriers/gen/receipts"
    report = _json({"id": "c-1", "status": "delivered"})

    first, _ = await _send(url, **report)
    second, _ = await _send(url, **report)

    assert (first, second) == (503, 200)
    assert len(pigeon.receipts) == 1


@pytest.mark.parametrize(
    ("encoding", "prefix", "algorithm"),
    [("hex", "sha256=", "sha256"), ("base64", "", "sha1")],
)
async def test_hmac_signed_receipts_are_checked(
    pigeon: Pigeon, connect: Connect, encoding: str, prefix: str, algorithm: str
) -> None:
    """With an HMAC secret, a correctly signed body passes; a wrong or missing one is 403."""
    await connect(
        callback_hmac_secret=HMAC_SECRET,
        callback_hmac_header="X-Hub-Signature",
        callback_hmac_encoding=encoding,
        callback_hmac_prefix=prefix,
        callback_hmac_algorithm=algorithm,
    )
    url = f"{pigeon.url}/v1/carriers/gen/receipts"
    body = json.dumps({"id": "c-1", "status": "delivered"}).encode()
    digest = hmac.new(HMAC_SECRET.encode(), body, algorithm).digest()
    good = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    bad = prefix + ("00" * len(digest) if encoding == "hex" else "AAAA")

    missing = await _send(url, body=body)
    forged = await _send(url, body=body, headers={"X-Hub-Signature": bad})
    tampered = await _send(url, body=body + b" ", headers={"X-Hub-Signature": good})
    assert [r[0] for r in (missing, forged, tampered)] == [403, 403, 403]
    assert pigeon.receipts == []

    assert (await _send(url, body=body, headers={"x-hub-signature": good}))[0] == 200
    assert [r.carrier_message_id for r in pigeon.receipts] == ["c-1"]


async def test_json_and_form_inbound_messages_reach_the_mo_sink(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A JSON batch and a form post of replies both become InboundMessages."""
    await connect(inbound_items_path="messages", inbound_text_field="content.text")
    url = f"{pigeon.url}/v1/carriers/gen/inbound"
    batch = {
        "messages": [
            {"from": "447700900123", "to": "+14155550100", "content": {"text": " Yes please "}},
            {"from": "447700900124", "to": "12345", "content": {"text": "STOP"}},
        ]
    }
    assert (await _send(url, **_json(batch)))[0] == 200

    await connect(inbound_format="form", inbound_from_field="msisdn", inbound_text_field="sms")
    form = {"msisdn": "447700900125", "to": "12345", "sms": "HELP"}
    assert (await _send(url, **_form(form)))[0] == 200

    assert pigeon.inbound == [
        InboundMessage("gen", "+447700900123", "+14155550100", " Yes please ", NOW),
        InboundMessage("gen", "+447700900124", "12345", "STOP", NOW),
        InboundMessage("gen", "+447700900125", "12345", "HELP", NOW),
    ]


async def test_an_inbound_message_without_a_sender_is_a_bad_request(
    pigeon: Pigeon, connect: Connect
) -> None:
    """A single inbound message lacking from gives 400 and reaches no sink."""
    await connect()
    status, _ = await _send(f"{pigeon.url}/v1/carriers/gen/inbound", **_json({"text": "hi"}))
    assert status == 400
    assert pigeon.inbound == []
