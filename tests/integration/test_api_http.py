"""The REST API end to end: the real Litestar app on the real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar import Litestar

import pigeon.store.messages as store_messages
from pigeon.api.app import ApiServices, create_app
from pigeon.api.problems import PROBLEMS, TYPE_PREFIX
from pigeon.clock import SystemClock
from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant, key_digest
from pigeon.domain.messages import Message, MessageStatus, Part
from pigeon.ids import UlidFactory
from pigeon.ports import Mutation
from pigeon.queue import SqlJobQueue
from pigeon.services.accept import AcceptMessage
from pigeon.services.account import DescribeAccount
from pigeon.services.authenticate import Authenticate
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.queries import ReadMessages
from pigeon.services.representation import message_to_dict
from pigeon.services.webhook_endpoints import ManageWebhookEndpoints
from pigeon.store import Database, SqlAccountStore, SqlMessageStore, SqlWebhookStore
from pigeon.telemetry import JOBS_PENDING
from pigeon.webhooks.signing import new_secret

KEY = "pk_test_api_" + "a" * 40
OTHER_KEY = "pk_live_api_" + "b" * 40
MOBILE = "+447400123456"
MAX_BODY = 1_048_576
MISSING = object()


@dataclass
class Api:
    """The app under test, its client and what stands behind it."""

    client: httpx.AsyncClient
    services: ApiServices
    messages: SqlMessageStore
    tenant: Tenant
    other: Tenant
    ready: dict[str, bool] = field(default_factory=dict)

    async def send(
        self, key: str = KEY, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        """POST /v1/messages with ``body`` as JSON."""
        return await self.client.post(
            "/v1/messages", json=body, headers={**auth(key), **(headers or {})}
        )

    async def sent(self, **body: Any) -> dict[str, Any]:
        """POST /v1/messages and return the accepted message."""
        response = await self.send(**{"to": MOBILE, "body": "Hello", **body})
        assert response.status_code == 202, response.text
        data: dict[str, Any] = response.json()
        return data


def auth(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


async def _tenant_with_key(
    accounts: SqlAccountStore, ids: UlidFactory, name: str, secret: str, region: str | None
) -> Tenant:
    now = datetime.now(UTC)
    tenant = Tenant(id=ids.new("ten"), name=name, default_region=region, created_at=now)
    await accounts.create_tenant(tenant)
    mode = KeyMode.TEST if secret.startswith("pk_test_") else KeyMode.LIVE
    await accounts.create_api_key(
        ApiKey(
            id=ids.new("key"),
            tenant_id=tenant.id,
            mode=mode,
            role=Role.TENANT,
            digest=key_digest(secret),
            prefix=secret[:12],
            created_at=now,
        )
    )
    return tenant


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Api]:
    """The app wired like ``bootstrap`` does, on this test's database, with two tenants."""
    clock = SystemClock()
    ids = UlidFactory()
    messages = SqlMessageStore(database, clock)
    accounts = SqlAccountStore(database)
    webhooks = SqlWebhookStore(database)
    queue = SqlJobQueue(database, clock)
    directory = EndpointDirectory(webhooks)
    ready = {"store": True, "queue": True, "connectors": True}

    async def readiness() -> dict[str, bool]:
        return {**ready, "store": ready["store"] and await database.ping()}

    async def before_metrics() -> None:
        for kind, count in (await queue.pending()).items():
            JOBS_PENDING.labels(kind).set(count)

    services = ApiServices(
        authenticate=Authenticate(accounts),
        accept=AcceptMessage(messages, clock, ids, EventRecorder(ids, clock, directory)),
        read=ReadMessages(messages),
        endpoints=ManageWebhookEndpoints(webhooks, ids, clock, directory, new_secret),
        readiness=readiness,
        before_metrics=before_metrics,
        account=DescribeAccount(lambda tenant_id: f"whsec_{tenant_id}"),
    )
    tenant = await _tenant_with_key(accounts, ids, "acme", KEY, None)
    other = await _tenant_with_key(accounts, ids, "globex", OTHER_KEY, "GB")
    app = create_app(services, max_body_bytes=MAX_BODY)
    # The app runs on the test's event loop, like the database it uses (Litestar's
    # AsyncTestClient would run it on a portal thread with a loop of its own).
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pigeon.test") as client:
        yield Api(client, services, messages, tenant, other, ready)


def problem(
    response: httpx.Response, status: int, code: str, field: object = MISSING
) -> dict[str, Any]:
    """Assert an RFC 9457 problem with a documented ``code``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["type"] == TYPE_PREFIX + code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert code in PROBLEMS, f"{code} is not documented"
    assert PROBLEMS[code].status == status
    if field is not MISSING:
        assert body.get("field") == field
    return body


# --- authentication ------------------------------------------------------------------------


async def test_missing_key_is_401_with_bearer_challenge(api: Api) -> None:
    """A /v1 request without a key is a 401 problem that challenges for a bearer token."""
    response = await api.client.get("/v1/messages")
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="pigeon"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer pk_test_not_a_real_key_000000000000",
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
async def test_wrong_key_is_401(api: Api, header: str) -> None:
    """An unknown key, a foreign token or another scheme is a 401 with error=invalid_token."""
    response = await api.client.post(
        "/v1/messages", json={"to": MOBILE, "body": "x"}, headers={"Authorization": header}
    )
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_operations_and_docs_need_no_key(api: Api) -> None:
    """Health, readiness, metrics and the docs answer without credentials."""
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await api.client.get(path)).status_code == 200, path


# --- sending -------------------------------------------------------------------------------


async def test_send_answers_202_with_the_shared_message_shape(api: Api) -> None:
    """A valid send is a 202 whose body is exactly the webhook representation of the message."""
    response = await api.send(to=MOBILE, body="Your code is 123456", category="otp")
    assert response.status_code == 202
    data = response.json()
    assert data["id"].startswith("msg_")
    assert response.headers["location"] == f"/v1/messages/{data['id']}"
    assert "idempotent-replayed" not in response.headers
    stored = await api.messages.get_message(data["id"], api.tenant.id)
    assert stored is not None
    assert data == message_to_dict(stored)
    assert data["status"] == "queued"
    assert data["to"] == MOBILE
    assert data["category"] == "otp"
    assert data["encoding"] == "gsm7"
    assert data["segments"] == 1
    assert data["test"] is True


async def test_national_number_with_country_is_normalised(api: Api) -> None:
    """A national-format number with its country is stored in E.164."""
    data = await api.sent(to="07400 123456", country="GB")
    assert data["to"] == MOBILE


async def test_international_formats_are_normalised(api: Api) -> None:
    """00-prefixed and punctuated international numbers become E.164."""
    assert (await api.sent(to="0044 7400 123-456"))["to"] == MOBILE
    assert (await api.sent(to="+44 (0)7400 123456"))["to"] == MOBILE


@pytest.mark.parametrize(
    "to",
    ["+1", "12", "hello", "+999123456789", "+4474001234567890", "", "   ", "+44 1", "07400123456"],
)
async def test_invalid_or_impossible_number_is_invalid_recipient(api: Api, to: str) -> None:
    """Numbers that cannot be dialled (or national ones without a country) are 422 on `to`."""
    problem(await api.send(to=to, body="hi"), 422, "invalid_recipient", field="to")


async def test_empty_message_body_is_refused(api: Api) -> None:
    """An empty or absent text is a 422 invalid_body on `body`."""
    problem(await api.send(to=MOBILE, body=""), 422, "invalid_body", field="body")
    problem(await api.send(to=MOBILE), 422, "invalid_body", field="body")


async def test_body_over_ten_segments_is_refused(api: Api) -> None:
    """A text needing 11 segments is a 422 body_too_long; 10 segments are accepted."""
    problem(await api.send(to=MOBILE, body="x" * 1531), 422, "body_too_long", field="body")
    assert (await api.sent(body="x" * 1530))["segments"] == 10


async def test_unicode_body_is_ucs2(api: Api) -> None:
    """A curly quote makes the message UCS-2."""
    data = await api.sent(body="It\u2019s here")
    assert data["encoding"] == "ucs2"


async def test_unknown_field_is_refused(api: Api) -> None:
    """A field the API does not know is a 422 unknown_field naming it."""
    response = await api.send(to=MOBILE, body="hi", priority="high")
    problem(response, 422, "unknown_field", field="priority")


async def test_template_is_not_supported_yet(api: Api) -> None:
    """A template instead of a body is a 422 unsupported_field."""
    response = await api.send(to=MOBILE, template={"id": "tpl_1", "variables": {}})
    problem(response, 422, "unsupported_field", field="template")


async def test_malformed_json_is_400(api: Api) -> None:
    """A body that is not JSON is a 400 malformed_json."""
    for raw in (b'{"to": "+447400123456",', b"to=+447400123456", b"\xff\xfe"):
        response = await api.client.post(
            "/v1/messages", content=raw, headers={**auth(KEY), "Content-Type": "application/json"}
        )
        problem(response, 400, "malformed_json")


async def test_empty_request_body_is_422(api: Api) -> None:
    """A POST with no body at all is a 422 invalid_request."""
    response = await api.client.post("/v1/messages", headers=auth(KEY))
    problem(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": 447400123456, "body": "hi"}, "to"),
        ({"to": MOBILE, "body": ["hi"]}, "body"),
        ({"to": MOBILE, "body": "hi", "category": "spam"}, "category"),
        ({"to": MOBILE, "body": "hi", "category": 1}, "category"),
        ({"to": MOBILE, "body": "hi", "validity_seconds": "3600"}, "validity_seconds"),
        ({"to": MOBILE, "body": "hi", "validity_seconds": 1.5}, "validity_seconds"),
        ({"to": MOBILE, "body": "hi", "send_at": "tomorrow"}, "send_at"),
        ({"to": MOBILE, "body": "hi", "send_at": 1767225600}, "send_at"),
        ({"to": MOBILE, "body": "hi", "from": {"name": "x"}}, "from"),
        ({"to": MOBILE, "body": "hi", "client_ref": 7}, "client_ref"),
        ({"to": MOBILE, "body": "hi", "client_ref": "r" * 256}, "client_ref"),
        ({"to": MOBILE, "body": "hi", "max_price": True}, "max_price"),
        ({"to": MOBILE, "body": "hi", "max_price": "cheap"}, "max_price"),
        ({"to": MOBILE, "body": "hi", "callback_url": False}, "callback_url"),
    ],
)
async def test_wrong_types_are_invalid_field(api: Api, body: dict[str, Any], field: str) -> None:
    """A field of the wrong JSON type or shape is a 422 invalid_field naming it."""
    response = await api.client.post("/v1/messages", json=body, headers=auth(KEY))
    problem(response, 422, "invalid_field", field=field)


async def test_missing_to_is_missing_field(api: Api) -> None:
    """Without `to` the request is a 422 missing_field."""
    problem(await api.send(body="hi"), 422, "missing_field", field="to")


async def test_non_object_json_is_invalid_request(api: Api) -> None:
    """A JSON array or string is a 422 invalid_request."""
    for raw in (b"[]", b'"hi"', b"null"):
        response = await api.client.post("/v1/messages", content=raw, headers=auth(KEY))
        problem(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"from": "This is far too long"}, "invalid_sender", "from"),
        ({"country": "GBR"}, "invalid_country", "country"),
        ({"send_at": "2030-01-01T09:00:00"}, "invalid_send_at", "send_at"),
        ({"send_at": "2999-01-01T09:00:00Z"}, "invalid_send_at", "send_at"),
        ({"validity_seconds": 10}, "invalid_validity", "validity_seconds"),
        ({"validity_seconds": 10**30}, "invalid_validity", "validity_seconds"),
        ({"callback_url": "ftp://example.com/x"}, "invalid_url", "callback_url"),
        ({"callback_url": "not a url"}, "invalid_url", "callback_url"),
    ],
)
async def test_impossible_values_are_refused(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    """Well-typed but impossible values are a 422 with the service's code and field."""
    problem(await api.send(to=MOBILE, body="hi", **body), 422, code, field=field)


async def test_optional_fields_are_accepted(api: Api) -> None:
    """Sender, client_ref, callback, validity and max_price are accepted and echoed."""
    data = await api.sent(
        **{
            "from": "Acme",
            "client_ref": "order-42",
            "callback_url": "https://hooks.example.com/sms",
            "validity_seconds": 600,
            "max_price": "0.05",
        }
    )
    assert data["from"] == "Acme"
    assert data["client_ref"] == "order-42"
    created = datetime.fromisoformat(data["created_at"])
    assert datetime.fromisoformat(data["expires_at"]) - created == timedelta(seconds=600)


async def test_future_send_at_schedules_the_message(api: Api) -> None:
    """A send_at in the future makes the message scheduled for then."""
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    data = await api.sent(send_at=when.isoformat())
    assert data["status"] == "scheduled"
    assert datetime.fromisoformat(data["send_at"]) == when


async def test_request_over_the_limit_is_413(api: Api) -> None:
    """A body over 1 MiB is a 413, whether announced by Content-Length or streamed."""
    big = json.dumps({"to": MOBILE, "body": "x" * MAX_BODY}).encode()
    response = await api.client.post(
        "/v1/messages", content=big, headers={**auth(KEY), "Content-Type": "application/json"}
    )
    problem(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = await api.client.post(
        "/v1/messages", content=chunks(), headers={**auth(KEY), "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    problem(response, 413, "payload_too_large")


# --- idempotency ---------------------------------------------------------------------------


async def test_idempotent_replay_returns_the_same_message(api: Api) -> None:
    """The same key and body answer the first message again and store no second one."""
    headers = {"Idempotency-Key": "order-42-sms"}
    first = await api.send(to=MOBILE, body="Your order shipped", headers=headers)
    again = await api.send(to=MOBILE, body="Your order shipped", headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = (await api.client.get("/v1/messages", headers=auth(KEY))).json()["data"]
    assert [message["id"] for message in listed] == [first.json()["id"]]


async def test_idempotency_key_with_a_different_body_is_422(api: Api) -> None:
    """Reusing a key with another body is a 422 idempotency_key_reused and sends nothing."""
    headers = {"Idempotency-Key": "k-1"}
    assert (await api.send(to=MOBILE, body="one", headers=headers)).status_code == 202
    response = await api.send(to=MOBILE, body="two", headers=headers)
    problem(response, 422, "idempotency_key_reused")
    listed = (await api.client.get("/v1/messages", headers=auth(KEY))).json()["data"]
    assert len(listed) == 1


async def test_idempotency_keys_belong_to_their_tenant(api: Api) -> None:
    """Another tenant using the same key gets its own message."""
    headers = {"Idempotency-Key": "shared-key"}
    mine = await api.send(to=MOBILE, body="hi", headers=headers)
    theirs = await api.send(key=OTHER_KEY, to=MOBILE, body="hi", headers=headers)
    assert theirs.status_code == 202
    assert theirs.json()["id"] != mine.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize("key", ["k" * 256, "", "   ", "tab\there"])
async def test_idempotency_key_must_be_1_to_255_characters(api: Api, key: str) -> None:
    """An empty, over-long or non-printable Idempotency-Key is a 422 invalid_idempotency_key."""
    response = await api.send(to=MOBILE, body="hi", headers={"Idempotency-Key": key})
    problem(response, 422, "invalid_idempotency_key", field="Idempotency-Key")


async def test_idempotency_key_of_255_characters_is_accepted(api: Api) -> None:
    """A 255-character key is within the limit."""
    response = await api.send(to=MOBILE, body="hi", headers={"Idempotency-Key": "k" * 255})
    assert response.status_code == 202


# --- reading -------------------------------------------------------------------------------


async def test_get_message_adds_events(api: Api) -> None:
    """GET /v1/messages/{id} is the message plus its status history; no parts when single."""
    sent = await api.sent()
    response = await api.client.get(f"/v1/messages/{sent['id']}", headers=auth(KEY))
    assert response.status_code == 200
    data = response.json()
    events = data.pop("events")
    assert data == sent
    assert [event["status"] for event in events] == ["queued"]
    assert events[0]["at"] == sent["created_at"]
    assert "detail" not in events[0]
    assert "parts" not in data


async def test_get_multipart_message_lists_its_parts(api: Api) -> None:
    """A multipart message shows each part's index, status and carrier id when known."""
    sent = await api.sent(body="x" * 200)
    assert sent["segments"] == 2

    def dispatched(message: Message) -> Mutation:
        message.parts = [
            Part(index=0, status=MessageStatus.SENT, carrier_message_id="ABC123"),
            Part(index=1, status=MessageStatus.SENDING),
        ]
        return Mutation(message=message)

    await api.messages.mutate(sent["id"], dispatched)
    data = (await api.client.get(f"/v1/messages/{sent['id']}", headers=auth(KEY))).json()
    assert data["parts"] == [
        {"index": 0, "status": "sent", "carrier_message_id": "ABC123"},
        {"index": 1, "status": "sending"},
    ]


async def test_other_tenants_message_is_404(api: Api) -> None:
    """A message id of another tenant is indistinguishable from an unknown id."""
    sent = await api.sent()
    response = await api.client.get(f"/v1/messages/{sent['id']}", headers=auth(OTHER_KEY))
    problem(response, 404, "not_found", field="id")
    response = await api.client.get("/v1/messages/msg_nope", headers=auth(KEY))
    problem(response, 404, "not_found", field="id")


@pytest.mark.parametrize("message_id", ["msg_%00", "x" * 65, "msg_%27%3B--", "%E2%82%AC"])
async def test_ids_that_cannot_exist_are_404(api: Api, message_id: str) -> None:
    """Ids with characters or lengths ours never have are a 404, never a store error."""
    for path in (f"/v1/messages/{message_id}", f"/v1/webhook-endpoints/{message_id}"):
        problem(await api.client.get(path, headers=auth(KEY)), 404, "not_found", field="id")
    response = await api.client.delete(f"/v1/webhook-endpoints/{message_id}", headers=auth(KEY))
    problem(response, 404, "not_found", field="id")


async def test_list_paginates_newest_first(api: Api) -> None:
    """Pages of `limit` messages, newest first, chained by next_cursor until null."""
    sent = [(await api.sent(client_ref=str(n)))["id"] for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/messages", params=params, headers=auth(KEY))).json()
        assert len(page["data"]) <= 2
        seen.extend(message["id"] for message in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(sent))


async def test_list_default_limit_is_50(api: Api) -> None:
    """Without a limit a page holds at most 50 messages."""
    for _ in range(51):
        await api.sent()
    page = (await api.client.get("/v1/messages", headers=auth(KEY))).json()
    assert len(page["data"]) == 50
    assert page["next_cursor"] is not None


async def test_list_filters_by_status_recipient_and_time(api: Api) -> None:
    """status, to (normalised) and created_after/created_before narrow the list."""
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    queued = await api.sent(to=MOBILE)
    scheduled = await api.sent(to="+447400123457", send_at=later)

    async def ids(**params: str) -> list[str]:
        response = await api.client.get("/v1/messages", params=params, headers=auth(KEY))
        assert response.status_code == 200, response.text
        return [message["id"] for message in response.json()["data"]]

    assert await ids(status="scheduled") == [scheduled["id"]]
    assert await ids(status="queued") == [queued["id"]]
    assert await ids(status="delivered") == []
    assert await ids(to="0044 7400 123456") == [queued["id"]]
    assert await ids(to=MOBILE) == [queued["id"]]
    created = datetime.fromisoformat(queued["created_at"])
    assert await ids(created_after=(created + timedelta(hours=1)).isoformat()) == []
    assert await ids(created_before=(created - timedelta(hours=1)).isoformat()) == []
    window = {
        "created_after": (created - timedelta(minutes=1)).isoformat(),
        "created_before": (created + timedelta(minutes=1)).isoformat(),
    }
    assert set(await ids(**window)) == {queued["id"], scheduled["id"]}


async def test_list_shows_only_the_callers_messages(api: Api) -> None:
    """Another tenant's list does not contain this tenant's messages."""
    await api.sent()
    page = (await api.client.get("/v1/messages", headers=auth(OTHER_KEY))).json()
    assert page == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_before": "2026-13-01T00:00:00Z"}, "created_before"),
        ({"to": "not-a-number"}, "to"),
        ({"cursor": "c" * 101}, "cursor"),
        ({"cursor": "msg_\x00"}, "cursor"),
        ({"cursor": "' OR 1=1 --"}, "cursor"),
    ],
)
async def test_bad_list_parameters_are_400(api: Api, params: dict[str, str], field: str) -> None:
    """An invalid query parameter is a 400 invalid_parameter naming it."""
    response = await api.client.get("/v1/messages", params=params, headers=auth(KEY))
    problem(response, 400, "invalid_parameter", field=field)


async def test_a_page_filtered_by_status_may_be_short_with_a_cursor_to_follow(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page filtered by a status no index serves reads a bounded number of messages: it may
    hold fewer than ``limit``, even none, with a ``next_cursor``; following the cursors until
    ``null`` gives every match once."""
    monkeypatch.setattr(store_messages, "SCAN_BOUND", 2)
    monkeypatch.setattr(store_messages, "SCAN_FIRST", 2)
    sent = [(await api.sent())["id"] for _ in range(5)]  # queued: nothing dispatches here

    async def pages(status: str) -> list[list[str]]:
        found: list[list[str]] = []
        cursor = None
        while True:
            params = {"status": status, "limit": "2", **({"cursor": cursor} if cursor else {})}
            response = await api.client.get("/v1/messages", params=params, headers=auth(KEY))
            assert response.status_code == 200, response.text
            found.append([message["id"] for message in response.json()["data"]])
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return found

    assert await pages("delivered") == [[], [], []]  # five messages read two at a time
    queued = await pages("queued")
    assert [message_id for page in queued for message_id in page] == sent[::-1]


async def test_a_time_windows_cursor_to_a_gone_message_is_400(api: Api) -> None:
    """Paging a time window goes on from the cursor's message: one that does not exist (never
    did, or was deleted since) is a 400 invalid_parameter naming the cursor."""
    params = {"created_after": "2026-01-01T00:00:00Z", "cursor": "msg_01JD3ZZZZZZZZZZZZZZZZZZZZZ"}
    response = await api.client.get("/v1/messages", params=params, headers=auth(KEY))
    problem(response, 400, "invalid_parameter", field="cursor")


async def test_limit_of_200_is_accepted(api: Api) -> None:
    """The largest page size is 200."""
    response = await api.client.get("/v1/messages", params={"limit": "200"}, headers=auth(KEY))
    assert response.status_code == 200


# --- preview -------------------------------------------------------------------------------


async def test_preview_shows_encoding_and_stores_nothing(api: Api) -> None:
    """Preview normalises the number, explains UCS-2 and sends nothing."""
    response = await api.client.post(
        "/v1/messages/preview",
        json={"to": "07400 123456", "country": "GB", "body": "It\u2019s 5€"},
        headers=auth(KEY),
    )
    assert response.status_code == 200
    assert response.json() == {
        "to": MOBILE,
        "country": "GB",
        "number_type": "mobile",
        "from": None,
        "encoding": "ucs2",
        "segments": 1,
        "units": 7,
        "non_gsm_chars": ["\u2019"],
        "price": None,
    }
    listed = (await api.client.get("/v1/messages", headers=auth(KEY))).json()["data"]
    assert listed == []


async def test_preview_refuses_what_send_refuses(api: Api) -> None:
    """Preview answers the same problems as sending."""
    url = "/v1/messages/preview"
    response = await api.client.post(url, json={"to": "+1", "body": "x"}, headers=auth(KEY))
    problem(response, 422, "invalid_recipient", field="to")
    response = await api.client.post(url, json={"to": MOBILE, "x": 1}, headers=auth(KEY))
    problem(response, 422, "unknown_field", field="x")
    problem(await api.client.post(url, json={"to": MOBILE}), 401, "unauthorized")


# --- webhook endpoints ---------------------------------------------------------------------


async def test_webhook_endpoint_lifecycle_shows_the_secret_once(api: Api) -> None:
    """Create answers 201 with the secret; list and get never show it; delete answers 204."""
    response = await api.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/pigeon", "events": ["message.delivered"]},
        headers=auth(KEY),
    )
    assert response.status_code == 201
    created = response.json()
    assert created["id"].startswith("whe_")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["message.delivered"]
    assert response.headers["location"] == f"/v1/webhook-endpoints/{created['id']}"

    listed = await api.client.get("/v1/webhook-endpoints", headers=auth(KEY))
    assert listed.status_code == 200
    shown = {key: value for key, value in created.items() if key != "secret"}
    assert listed.json() == {"data": [shown], "next_cursor": None}
    got = await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=auth(KEY))
    assert got.json() == shown
    assert created["secret"] not in listed.text + got.text

    deleted = await api.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=auth(KEY))
    assert deleted.status_code == 204
    assert deleted.content == b""
    problem(
        await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=auth(KEY)),
        404,
        "not_found",
    )
    problem(
        await api.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=auth(KEY)),
        404,
        "not_found",
    )


async def test_webhook_endpoint_without_events_gets_everything(api: Api) -> None:
    """Omitting events subscribes to every event type (shown as an empty list)."""
    response = await api.client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=auth(KEY)
    )
    assert response.status_code == 201
    assert response.json()["events"] == []


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "mailto:ops@example.com"}, "invalid_url", "url"),
        (
            {"url": "https://x.example", "events": ["message.exploded"]},
            "invalid_event_type",
            "events",
        ),
        ({"url": "https://x.example", "secret": "mine"}, "unknown_field", "secret"),
        ({"url": 42}, "invalid_field", "url"),
        ({"url": "https://x.example", "events": "message.sent"}, "invalid_field", "events"),
        ({}, "missing_field", "url"),
    ],
)
async def test_bad_webhook_endpoints_are_refused(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    """Invalid endpoint requests are 422 problems naming the field."""
    response = await api.client.post("/v1/webhook-endpoints", json=body, headers=auth(KEY))
    problem(response, 422, code, field=field)


async def test_other_tenants_endpoints_are_invisible(api: Api) -> None:
    """Another tenant can neither list, read nor delete this tenant's endpoint."""
    created = (
        await api.client.post(
            "/v1/webhook-endpoints", json={"url": "https://x.example/h"}, headers=auth(KEY)
        )
    ).json()
    path = f"/v1/webhook-endpoints/{created['id']}"
    listed = await api.client.get("/v1/webhook-endpoints", headers=auth(OTHER_KEY))
    assert listed.json()["data"] == []
    problem(await api.client.get(path, headers=auth(OTHER_KEY)), 404, "not_found")
    problem(await api.client.delete(path, headers=auth(OTHER_KEY)), 404, "not_found")
    assert (await api.client.get(path, headers=auth(KEY))).status_code == 200


# --- operations ----------------------------------------------------------------------------


async def test_healthz_is_ok(api: Api) -> None:
    """/healthz answers 200 {"status": "ok"}."""
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_dependency(api: Api) -> None:
    """/readyz is 200 when everything is ready and 503 naming what is not."""
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"store": True, "queue": True, "connectors": True},
    }
    api.ready["connectors"] = False
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["connectors"] is False


async def test_metrics_expose_pigeon_metrics_refreshed_before_the_scrape(api: Api) -> None:
    """/metrics is Prometheus text with pigeon_ metrics, gauges refreshed by before_metrics."""
    await api.sent()
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE pigeon_accept_seconds histogram" in text
    assert "pigeon_message_status_changes_total{" in text
    assert re.search(r'^pigeon_jobs_pending\{kind="dispatch"\} 1\.0$', text, re.MULTILINE)


async def test_openapi_document_lists_our_paths(api: Api) -> None:
    """/openapi.json is an OpenAPI 3.1 document with every route, body and security."""
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    expected = {
        "/v1/messages": {"get", "post"},
        "/v1/messages/preview": {"post"},
        "/v1/messages/{message_id}": {"get"},
        "/v1/webhook-endpoints": {"get", "post"},
        "/v1/webhook-endpoints/{endpoint_id}": {"get", "delete"},
        "/v1/account": {"get"},
        "/v1/routes/explain": {"get"},
        "/v1/connectors/{connector_id}/stats": {"get"},
        "/v1/connectors": {"get", "post"},
        "/v1/connectors/{connector_id}": {"get", "patch", "delete"},
        "/v1/connectors/{connector_id}/prices": {"put", "delete"},
        "/v1/routes": {"get", "put", "post"},
        "/v1/routes/{route_id}": {"delete"},
        "/v1/carriers/{connector_id}/receipts": {"post"},
        "/v1/carriers/{connector_id}/inbound": {"post"},
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
    }
    assert set(paths) == set(expected)
    for path, methods in expected.items():
        assert set(paths[path]) == methods
    schemas = document["components"]["schemas"]
    send = paths["/v1/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendMessageRequest"
    }
    assert "from" in schemas["SendMessageRequest"]["properties"]
    assert schemas["SendMessageRequest"]["additionalProperties"] is False
    assert "requestBody" in paths["/v1/webhook-endpoints"]["post"]
    assert "Problem" in schemas
    for path, item in paths.items():
        for operation in item.values():
            # Carriers' callbacks carry the carrier's own signature, not an API key.
            needs_key = path.startswith("/v1/") and not path.startswith("/v1/carriers/")
            assert bool(operation.get("security")) == needs_key, path


async def test_docs_page_works_offline(api: Api) -> None:
    """/docs is HTML documenting every route and problem code, loading nothing from elsewhere."""
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert not re.search(r"(?:https?:)?//[a-z0-9]", page, re.IGNORECASE), "external URL"
    assert "<script" not in page
    assert "<link" not in page
    for path in ("/v1/messages", "/v1/messages/preview", "/v1/webhook-endpoints/{endpoint_id}"):
        assert f"<code>{path}</code>" in page
    for code in PROBLEMS:
        assert f'id="problem-{code}"' in page


async def test_unknown_route_is_404_problem(api: Api) -> None:
    """A path no route serves is a 404 not_found problem, with or without a key."""
    problem(await api.client.get("/v2/messages"), 404, "not_found")
    problem(await api.client.get("/v1/nothing", headers=auth(KEY)), 404, "not_found")


async def test_wrong_method_is_405_problem(api: Api) -> None:
    """A known path with an unsupported method is a 405 method_not_allowed with Allow."""
    response = await api.client.put("/v1/messages", headers=auth(KEY))
    problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    problem(await api.client.delete("/healthz"), 405, "method_not_allowed")


async def test_unexpected_error_is_a_logged_500_problem(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in a use case becomes a 500 internal_error problem, and is logged."""

    async def broken(*_: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(api.services.read, "get", broken)
    response = await api.client.get("/v1/messages/msg_x", headers=auth(KEY))
    body = problem(response, 500, "internal_error")
    assert "fire" not in body["detail"]
    captured = capsys.readouterr()
    assert "request_crashed" in captured.out + captured.err


async def test_real_server_on_loopback(api: Api) -> None:
    """Through uvicorn on a real socket: the lifespan runs, sends work, big bodies are a 413."""
    phases: list[str] = []

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        phases.append("start")
        yield
        phases.append("stop")

    app = create_app(api.services, max_body_bytes=4096, lifespan=[lifespan])
    config = uvicorn.Config(app, lifespan="on", ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening already, so connections queue until uvicorn has started and accepts them.
    sock.listen(16)
    port = sock.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            response = await client.post(
                "/v1/messages", json={"to": MOBILE, "body": "over the wire"}, headers=auth(KEY)
            )
            assert response.status_code == 202, response.text
            response = await client.post(
                "/v1/messages",
                json={"to": MOBILE, "body": "x" * 8192},
                headers=auth(KEY),
            )
            problem(response, 413, "payload_too_large")
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert phases == ["start"]
    finally:
        server.should_exit = True
        await serving
        sock.close()
    assert phases == ["start", "stop"]


# --- never a 500 ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "to": st.sampled_from(
        [MOBILE, "+447400123457", "0044 7400 123456", "07400 123456", "+1", "", "+" + "9" * 40]
    ),
    "country": st.sampled_from(["GB", "gb", "XX", "", "GBR"]),
    "from": st.sampled_from(["Acme", "12345", "+447400123456", "", "!!!", "A" * 20]),
    "body": st.text(max_size=200) | st.sampled_from(["", "x" * 1600, "\u20ac" * 700]),
    "category": st.sampled_from(["otp", "transactional", "marketing", "OTP"]),
    "callback_url": st.sampled_from(["https://x.example/h", "http://127.0.0.1/h", "ftp://x", ""]),
    "client_ref": st.text(max_size=20) | st.just("r" * 256),
    "send_at": st.sampled_from(
        [
            "2030-01-01T00:00:00Z",
            "2000-01-01T00:00:00Z",
            "2030-01-01T00:00:00",
            "9999-12-31T23:59:59Z",
        ]
    ),
    "validity_seconds": st.integers(60, 7 * 24 * 3600) | st.integers(-(2**70), 2**70),
    "max_price": st.sampled_from(["0.05", "1", "-1", "1e999", "NaN", "sNaN", "0x10"])
    | st.floats(min_value=0)
    | st.floats(allow_nan=False),
}


def _value(name: str) -> st.SearchStrategy[Any]:
    """Mostly plausible values for the field, sometimes any JSON value at all."""
    plausible = PLAUSIBLE[name]
    return st.integers(0, 5).flatmap(lambda pick: JSON if pick == 0 else plausible)


@settings(
    max_examples=120,
    deadline=None,
    # The app and database are built once per test and shared by every example on purpose:
    # each example is an independent request, and rebuilding a database per example is slow.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.fixed_dictionaries(
        {"to": _value("to"), "body": _value("body")},
        optional={name: _value(name) for name in PLAUSIBLE if name not in ("to", "body")},
    ),
    extra=st.one_of(
        st.just({}),
        st.just({}),
        st.just({}),
        st.dictionaries(
            st.sampled_from(["template", "priority"]) | st.text(max_size=8), JSON, max_size=1
        ),
    ),
    key=st.none()
    | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
    | st.just("k" * 256),
)
async def test_random_send_requests_never_fail_with_500(
    api: Api, body: dict[str, Any], extra: dict[str, Any], key: str | None
) -> None:
    """Whatever JSON values the fields hold, sending and previewing answer 2xx or 4xx."""
    payload = json.dumps({**extra, **body}).encode()
    headers = {**auth(KEY), "Content-Type": "application/json"}
    if key is not None and key.isprintable() and key.isascii():
        headers["Idempotency-Key"] = key
    for path in ("/v1/messages", "/v1/messages/preview"):
        response = await api.client.post(path, content=payload, headers=headers)
        assert response.status_code in (200, 202, 400, 422), response.text
        if response.status_code >= 400:
            problem(response, response.status_code, response.json()["code"])
        data = response.json()
        event(f"{path}: {response.status_code} {data.get('code', '')} {data.get('field', '')}")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # as above
)
@given(raw=st.binary(max_size=200), url=JSON, events=JSON)
async def test_random_bytes_and_endpoint_bodies_never_fail_with_500(
    api: Api, raw: bytes, url: Any, events: Any
) -> None:
    """Arbitrary bytes and arbitrary endpoint fields answer 4xx problems, never 500."""
    headers = {**auth(KEY), "Content-Type": "application/json"}
    for path in ("/v1/messages", "/v1/webhook-endpoints"):
        response = await api.client.post(path, content=raw, headers=headers)
        assert response.status_code in (201, 202, 400, 422), response.text
    # json.dumps writes infinities as the non-JSON token Infinity: that must be a 400.
    response = await api.client.post(
        "/v1/webhook-endpoints",
        content=json.dumps({"url": url, "events": events}).encode(),
        headers=headers,
    )
    assert response.status_code in (201, 400, 422), response.text
    if response.status_code >= 400:
        problem(response, response.status_code, response.json()["code"])


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # as above
)
@given(
    text=st.text(max_size=300),
    client_ref=st.none() | st.text(max_size=255),
    sender=st.sampled_from([None, "Acme", "12345", "+447400123457"]),
    category=st.sampled_from(["otp", "transactional", "marketing"]),
)
async def test_any_text_is_stored_unchanged_or_refused_cleanly(
    api: Api, text: str, client_ref: str | None, sender: str | None, category: str
) -> None:
    """Any Unicode body and client_ref are read back unchanged after a 202, or refused by a 422."""
    body = {"to": MOBILE, "body": text, "from": sender, "category": category}
    response = await api.send(**body, client_ref=client_ref)
    if response.status_code == 422:
        data = problem(response, 422, response.json()["code"])
        assert data["code"] in ("invalid_body", "body_too_long", "invalid_field")
        event(f"422 {data['code']}")
        return
    assert response.status_code == 202, response.text
    sent = response.json()
    got = (await api.client.get(f"/v1/messages/{sent['id']}", headers=auth(KEY))).json()
    assert got["body"] == sent["body"] == text
    assert got["client_ref"] == client_ref
    assert got["category"] == category
    event(f"202 {sent['encoding']}")


async def test_account_describes_the_caller_and_its_callback_secret(api: Api) -> None:
    """GET /v1/account names the caller's tenant and the secret signing its callbacks."""
    response = await api.client.get("/v1/account", headers=auth(KEY))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant_id"] == api.tenant.id
    assert body["callback_secret"] == f"whsec_{api.tenant.id}"
    assert body["key_role"] == "tenant"
    unauthenticated = await api.client.get("/v1/account")
    problem(unauthenticated, 401, "unauthorized")
