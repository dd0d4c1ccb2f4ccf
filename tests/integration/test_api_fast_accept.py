"""The ``POST /v1/messages`` fast path answers exactly like the Litestar route it stands in for.

Two apps share one set of services on this test's database: ``fast`` (as ``pigeon serve`` runs
it) and ``plain`` (``create_app(fast_accept=False)``: Litestar all the way). Each case sends the
same requests, at the ASGI level, to both and compares status, every header (names, values,
order) and the body bytes, with generated message ids and times replaced consistently. The
same cases then go over loopback sockets to uvicorn serving each app with
``CoalescingHttpToolsProtocol``, which answers the fast app's sends without the ASGI cycle.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from litestar.types import HTTPScope, Message

from pigeon.api.app import ApiServices, PigeonApp, create_app
from pigeon.api.fast_accept import FastAccept, FastAnswer
from pigeon.clock import SystemClock
from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant, key_digest
from pigeon.ids import UlidFactory
from pigeon.services.accept import AcceptMessage
from pigeon.services.account import DescribeAccount
from pigeon.services.authenticate import Authenticate
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.queries import ReadMessages
from pigeon.services.webhook_endpoints import ManageWebhookEndpoints
from pigeon.store import Database, SqlAccountStore, SqlMessageStore, SqlWebhookStore
from pigeon.webhooks.signing import new_secret
from support.http_server import serving

TEST_KEY = "pk_test_fast_" + "a" * 40
LIVE_KEY = "pk_live_fast_" + "b" * 40
OPERATOR_KEY = "pk_live_oper_" + "c" * 40
REVOKED_KEY = "pk_live_gone_" + "d" * 40
UNKNOWN_KEY = "pk_live_none_" + "e" * 40
MOBILE = "+447400123456"
MAX_BODY = 4096
#: Replaced by the app's name in Idempotency-Key values, so the two runs never share a key.
RUN = "{run}"
SOON = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Step:
    """One request: headers (name, value) and the body, in the chunks it arrives in."""

    body: Sequence[bytes] = (b"",)
    key: str | None = TEST_KEY
    headers: Sequence[tuple[str, str]] = ()
    content_length: bool = True
    method: str = "POST"
    path: str = "/v1/messages"
    query: bytes = b""
    disconnect: bool = False


@dataclass
class Answer:
    """What an app sent back."""

    status: int
    headers: Headers
    body: bytes


@dataclass
class Apps:
    """The two apps under test and what they share."""

    fast: PigeonApp
    plain: PigeonApp
    services: ApiServices
    served: list[str] = field(default_factory=list)


class CountingFastAccept(FastAccept):
    """The fast path, recording each request it answered and each one it got over ASGI."""

    __slots__ = ("over_asgi", "served", "started")

    def __init__(self, services: ApiServices, served: list[str]) -> None:
        super().__init__(services, max_body_bytes=MAX_BODY)
        self.served = served
        self.over_asgi = 0
        #: Requests answered through ``start`` (with others of their turn of the loop).
        self.started = 0

    async def __call__(self, scope: HTTPScope, receive: Any, send: Any) -> None:
        """Count, then answer over ASGI."""
        self.over_asgi += 1
        await super().__call__(scope, receive, send)

    async def answer(self, headers: Any, next_chunk: Any) -> FastAnswer:
        """Record, then answer."""
        self.served.append("/v1/messages")
        return await super().answer(headers, next_chunk)

    def start_fields(self, *fields: Any) -> Any:
        """Answer, and record it when it was started here (not handed to ``answer``)."""
        answering = super().start_fields(*fields)
        if answering is not None:
            self.served.append("/v1/messages")
            self.started += 1
        return answering


def json_step(text: str, **changes: Any) -> Step:
    """A POST of ``text`` as a JSON body."""
    return Step(body=(text.encode(),), **changes)


def idempotent(key: str, text: str) -> Step:
    """A POST with an Idempotency-Key (``{run}`` is replaced per app)."""
    return json_step(text, headers=[("idempotency-key", key)])


HI = f'{{"to": "{MOBILE}", "body": "Hello"}}'
CASES: dict[str, list[Step]] = {
    "plain": [json_step(HI)],
    "unicode": [json_step(f'{{"to": "{MOBILE}", "body": "Привет, мир 👋 ü"}}')],
    "long multipart": [json_step(f'{{"to": "{MOBILE}", "body": "{"long text " * 60}"}}')],
    "client_ref": [json_step(f'{{"to": "{MOBILE}", "body": "x", "client_ref": "order-7"}}')],
    "callback_url": [
        json_step(f'{{"to": "{MOBILE}", "body": "x", "callback_url": "https://example.com/cb"}}')
    ],
    "scheduled": [json_step(f'{{"to": "{MOBILE}", "body": "later", "send_at": "{SOON}"}}')],
    "otp": [json_step(f'{{"to": "{MOBILE}", "body": "Code 123456", "category": "otp"}}')],
    "sender and validity": [
        json_step(f'{{"to": "{MOBILE}", "body": "x", "from": "Acme", "validity_seconds": 600}}')
    ],
    "national number": [json_step('{"to": "07400 123456", "body": "x", "country": "GB"}')],
    "max_price": [json_step(f'{{"to": "{MOBILE}", "body": "x", "max_price": "0.05"}}')],
    "live key": [json_step(HI, key=LIVE_KEY)],
    "operator key": [json_step(HI, key=OPERATOR_KEY)],
    "text/plain content type": [json_step(HI, headers=[("content-type", "text/plain")])],
    "chunked body": [Step(body=(HI[:10].encode(), b"", HI[10:].encode()), content_length=False)],
    "idempotency replay": [idempotent(f"{RUN}-1", HI), idempotent(f"{RUN}-1", HI)],
    "idempotency conflict": [
        idempotent(f"{RUN}-2", HI),
        idempotent(f"{RUN}-2", f'{{"to": "{MOBILE}", "body": "other"}}'),
    ],
    "first idempotency header wins": [
        json_step(HI, headers=[("idempotency-key", ""), ("idempotency-key", f"{RUN}-3")])
    ],
    "empty idempotency key": [idempotent("", HI)],
    "long idempotency key": [idempotent("k" * 256, HI)],
    "tab in idempotency key": [idempotent("a\tb", HI)],
    "key checked before body": [idempotent("", "{bad")],
    "no authorization": [json_step(HI, key=None)],
    "basic scheme": [json_step(HI, key=None, headers=[("authorization", "Basic dXNlcjpwYXNz")])],
    "bearer without key": [json_step(HI, key=None, headers=[("authorization", "Bearer ")])],
    "not a pigeon key": [json_step(HI, key="sk_something")],
    "unknown key": [json_step(HI, key=UNKNOWN_KEY)],
    "revoked key": [json_step(HI, key=REVOKED_KEY)],
    "auth before body size": [json_step("x" * (MAX_BODY + 1), key=None)],
    "malformed json": [json_step('{"to": ')],
    "json array": [json_step(f'["{MOBILE}"]')],
    "json string": [json_step('"hello"')],
    "missing to": [json_step('{"body": "x"}')],
    "bad number": [json_step('{"to": "12", "body": "x"}')],
    "wrong type": [json_step('{"to": 447400123456, "body": "x"}')],
    "empty body": [Step()],
    "blank body": [json_step("  \n")],
    "empty text": [json_step(f'{{"to": "{MOBILE}", "body": ""}}')],
    "text too long": [json_step(f'{{"to": "{MOBILE}", "body": "{"x" * 1600}"}}')],
    "unknown field": [json_step(f'{{"to": "{MOBILE}", "body": "x", "colour": "red"}}')],
    "template": [json_step(f'{{"to": "{MOBILE}", "template": {{"id": "t"}}}}')],
    "bad callback_url": [
        json_step(f'{{"to": "{MOBILE}", "body": "x", "callback_url": "ftp://x"}}')
    ],
    "send_at without zone": [
        json_step(f'{{"to": "{MOBILE}", "body": "x", "send_at": "2030-01-01T00:00:00"}}')
    ],
    "bad validity": [json_step(f'{{"to": "{MOBILE}", "body": "x", "validity_seconds": 5}}')],
    "bad country": [json_step('{"to": "07400 123456", "body": "x", "country": "GBR"}')],
    "nul character": [json_step(f'{{"to": "{MOBILE}", "body": "a\\u0000b"}}')],
    "announced body over the limit": [
        json_step(f'{{"to": "{MOBILE}", "body": "{"x" * MAX_BODY}"}}')
    ],
    "streamed body over the limit": [
        Step(body=(b'{"body": "' + b"x" * MAX_BODY, b'", "to": "1"}'), content_length=False)
    ],
    "body at the limit": [
        json_step(f'{{"to": "{MOBILE}", "body": "{"x" * (MAX_BODY - 40)}"}}'.ljust(MAX_BODY))
    ],
    "unreadable content-length": [
        json_step(HI, content_length=False, headers=[("content-length", "twelve")])
    ],
    "client gone mid-body": [Step(body=(b'{"to": ',), content_length=False, disconnect=True)],
}

#: Requests the fast path must leave to Litestar.
PASSED_ON: dict[str, Step] = {
    "list": Step(method="GET"),
    "head": Step(method="HEAD"),
    "put": json_step(HI, method="PUT"),
    "trailing slash": json_step(HI, path="/v1/messages/"),
    "query string": json_step(HI, query=b"x=1"),
    "preview": json_step(HI, path="/v1/messages/preview"),
    "unknown route": json_step(HI, path="/v1/message"),
}


async def _key(
    accounts: SqlAccountStore, ids: UlidFactory, tenant: Tenant, secret: str, **changes: Any
) -> None:
    mode = KeyMode.TEST if secret.startswith("pk_test_") else KeyMode.LIVE
    key = ApiKey(
        id=ids.new("key"),
        tenant_id=tenant.id,
        mode=mode,
        role=Role.TENANT,
        digest=key_digest(secret),
        prefix=secret[:12],
        created_at=datetime.now(UTC),
    )
    await accounts.create_api_key(replace(key, **changes))


@pytest.fixture
async def services(database: Database) -> ApiServices:
    """The API's services on this test's database, with a tenant and its keys."""
    clock = SystemClock()
    ids = UlidFactory()
    messages = SqlMessageStore(database, clock)
    accounts = SqlAccountStore(database)
    webhooks = SqlWebhookStore(database)
    directory = EndpointDirectory(webhooks)

    async def readiness() -> dict[str, bool]:
        return {"store": True}

    async def before_metrics() -> None:
        return None

    tenant = Tenant(id=ids.new("ten"), name="acme", default_region=None, created_at=clock.now())
    await accounts.create_tenant(tenant)
    await _key(accounts, ids, tenant, TEST_KEY)
    await _key(accounts, ids, tenant, LIVE_KEY)
    await _key(accounts, ids, tenant, OPERATOR_KEY, role=Role.OPERATOR)
    await _key(accounts, ids, tenant, REVOKED_KEY, revoked=True)
    return ApiServices(
        authenticate=Authenticate(accounts),
        accept=AcceptMessage(messages, clock, ids, EventRecorder(ids, clock, directory)),
        read=ReadMessages(messages),
        endpoints=ManageWebhookEndpoints(webhooks, ids, clock, directory, new_secret),
        readiness=readiness,
        before_metrics=before_metrics,
        account=DescribeAccount(lambda tenant_id: f"whsec_{tenant_id}"),
    )


def _apps(services: ApiServices) -> Apps:
    served: list[str] = []
    fast = create_app(services, max_body_bytes=MAX_BODY)
    assert fast.fast_accept is not None
    fast.fast_accept = CountingFastAccept(services, served)
    plain = create_app(services, max_body_bytes=MAX_BODY, fast_accept=False)
    assert plain.fast_accept is None
    return Apps(fast, plain, services, served)


@pytest.fixture
def apps(services: ApiServices) -> Apps:
    """The fast and the plain app over the same services."""
    return _apps(services)


async def call(app: PigeonApp, step: Step, run: str) -> Answer:
    """Send ``step`` to ``app`` as an ASGI server would; what it answered."""
    headers: Headers = []
    if step.key is not None:
        headers.append((b"authorization", f"Bearer {step.key}".encode()))
    for name, value in step.headers:
        headers.append((name.encode("latin-1"), value.replace(RUN, run).encode("latin-1")))
    if step.content_length:
        headers.append((b"content-length", str(sum(map(len, step.body))).encode()))
    scope: HTTPScope = {  # type: ignore[typeddict-item]  # only the keys an ASGI server sets
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": step.method,
        "scheme": "http",
        "path": step.path,
        "raw_path": step.path.encode(),
        "query_string": step.query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    events: Iterator[dict[str, Any]] = iter(
        [
            {"type": "http.request", "body": chunk, "more_body": i < len(step.body) - 1}
            for i, chunk in enumerate(step.body)
        ]
        if not step.disconnect
        else [{"type": "http.request", "body": step.body[0], "more_body": True}]
    )

    async def receive() -> dict[str, Any]:
        return next(events, {"type": "http.disconnect"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]  # our receive returns dicts
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    body = b"".join(
        message["body"] for message in bodies if message["type"] == "http.response.body"
    )  # type: ignore[typeddict-item]
    return Answer(start["status"], list(start["headers"]), body)


class Normaliser:
    """Replaces generated ids and times by placeholders numbered in order of appearance."""

    PATTERN = re.compile(rb"msg_[0-9A-Z]{26}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")

    def __init__(self) -> None:
        self.seen: dict[bytes, bytes] = {}

    def _sub(self, match: re.Match[bytes]) -> bytes:
        value = match.group()
        kind = b"msg" if value.startswith(b"msg_") else b"time"
        return self.seen.setdefault(value, b"<%s%d>" % (kind, len(self.seen)))

    def __call__(self, answer: Answer) -> Answer:
        return Answer(
            answer.status,
            [(name, self._header(name, value)) for name, value in answer.headers],
            self.PATTERN.sub(self._sub, answer.body),
        )

    def _header(self, name: bytes, value: bytes) -> bytes:
        if name == b"allow":
            # Litestar lists a 405's methods from a set: the order varies between app instances.
            return b", ".join(sorted(value.split(b", ")))
        return self.PATTERN.sub(self._sub, value)


async def run_both(apps: Apps, steps: Sequence[Step]) -> tuple[list[Answer], list[Answer]]:
    """The answers of the fast app, then of the plain one, to ``steps``, normalised."""
    fast, plain = Normaliser(), Normaliser()
    fast_answers = [fast(await call(apps.fast, step, "fast")) for step in steps]
    plain_answers = [plain(await call(apps.plain, step, "plain")) for step in steps]
    return fast_answers, plain_answers


@pytest.mark.parametrize("name", list(CASES))
async def test_fast_path_answers_like_litestar(apps: Apps, name: str) -> None:
    """Each kind of send answers the same status, headers and bytes on both paths."""
    steps = CASES[name]
    fast, plain = await run_both(apps, steps)
    assert apps.served == ["/v1/messages"] * len(steps)
    assert fast == plain


async def test_matrix_covers_success_and_every_error_class(apps: Apps) -> None:
    """The cases above include accepted sends and each problem code a send can answer."""
    statuses: set[int] = set()
    codes: set[str] = set()
    for steps in CASES.values():
        for answer in (await run_both(apps, steps))[0]:
            statuses.add(answer.status)
            if found := re.search(rb'"code":"([a-z_]+)"', answer.body):
                codes.add(found.group(1).decode())
    assert statuses == {202, 400, 401, 413, 422, 500}
    assert codes >= {
        "unauthorized",
        "malformed_json",
        "bad_request",
        "invalid_request",
        "missing_field",
        "invalid_field",
        "unknown_field",
        "unsupported_field",
        "invalid_recipient",
        "invalid_body",
        "body_too_long",
        "invalid_url",
        "invalid_send_at",
        "invalid_validity",
        "invalid_country",
        "idempotency_key_reused",
        "invalid_idempotency_key",
        "payload_too_large",
        "internal_error",
    }


async def test_replay_is_marked_on_the_fast_path(apps: Apps) -> None:
    """A replayed key answers the first message again with Idempotent-Replayed: true."""
    first, again = (await run_both(apps, CASES["idempotency replay"]))[0]
    assert first.body == again.body
    assert (b"idempotent-replayed", b"true") in again.headers
    assert (b"idempotent-replayed", b"true") not in first.headers


@pytest.mark.parametrize("name", list(PASSED_ON))
async def test_other_requests_go_to_litestar(apps: Apps, name: str) -> None:
    """Other methods, paths, a trailing slash or a query string are Litestar's, unchanged."""
    fast, plain = await run_both(apps, [PASSED_ON[name]])
    assert apps.served == []
    assert fast == plain


async def test_websocket_and_lifespan_go_to_litestar(apps: Apps) -> None:
    """Only HTTP requests are claimed; websocket and lifespan scopes are not."""
    assert not FastAccept.serves({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}})
    websocket: Any = {"type": "websocket", "path": "/v1/messages", "headers": []}
    assert not FastAccept.serves(websocket)


class Crash(Exception):
    """A bug in a use case."""


class CrashingAccept:
    """An accept use case with a bug."""

    async def __call__(self, *args: object, **kwargs: object) -> None:
        raise Crash("fire")


async def test_unexpected_error_is_the_same_logged_500(
    services: ApiServices, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception from accept is the same bland 500 on both paths, logged each time."""
    apps = _apps(replace(services, accept=cast("AcceptMessage", CrashingAccept())))
    fast, plain = await run_both(apps, [json_step(HI)])
    assert fast == plain
    assert fast[0].status == 500
    assert b"fire" not in fast[0].body
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("request_crashed") == 2


# --- over sockets: uvicorn with ``CoalescingHttpToolsProtocol`` ------------------------------

#: The socket tests prove the HTTP plumbing, which is the same on either store (the ASGI tests
#: above run the sends themselves on both): SQLite only.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def ports(apps: Apps) -> AsyncIterator[tuple[int, int]]:
    """uvicorn serving the fast app and the plain app on loopback ports, with Pigeon's
    protocol (as ``pigeon serve`` runs it)."""
    async with serving(apps.fast) as fast, serving(apps.plain) as plain:
        yield fast, plain


def _request(step: Step, run: str) -> bytes:
    """``step`` as HTTP/1.1 bytes (a chunked body when it announces no length)."""
    target = step.path + ("?" + step.query.decode() if step.query else "")
    lines = [f"{step.method} {target} HTTP/1.1", "host: 127.0.0.1"]
    if step.key is not None:
        lines.append(f"authorization: Bearer {step.key}")
    lines += [f"{name}: {value.replace(RUN, run)}" for name, value in step.headers]
    if step.content_length:
        lines.append(f"content-length: {sum(map(len, step.body))}")
        body = b"".join(step.body)
    elif any(name == "content-length" for name, _ in step.headers):
        body = b"".join(step.body)
    else:
        lines.append("transfer-encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in step.body if c) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


async def _response(reader: asyncio.StreamReader, method: str = "POST") -> Answer:
    """One response off the connection, without its ``date`` header."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    status_line, *header_lines = head[:-4].split(b"\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in header_lines]
    found = dict(headers)
    if method == "HEAD":
        body = b""
    elif b"content-length" in found:
        body = await reader.readexactly(int(found[b"content-length"]))
    else:
        assert found.get(b"transfer-encoding") == b"chunked"
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    kept = [(name, value) for name, value in headers if name != b"date"]
    return Answer(int(status_line.split(b" ")[1]), kept, body)  # type: ignore[arg-type]


async def _exchange(port: int, step: Step, run: str) -> Answer:
    """``step`` on a new connection to ``port``, and the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(step, run))
        await writer.drain()
        return await _response(reader, step.method)
    finally:
        writer.close()


async def run_both_over_sockets(
    ports: tuple[int, int], steps: Sequence[Step]
) -> tuple[list[Answer], list[Answer]]:
    """The answers of the fast server, then of the plain one, to ``steps``, normalised."""
    fast, plain = Normaliser(), Normaliser()
    fast_answers = [fast(await _exchange(ports[0], step, "fast-net")) for step in steps]
    plain_answers = [plain(await _exchange(ports[1], step, "plain-net")) for step in steps]
    return fast_answers, plain_answers


@ON_SQLITE
async def test_direct_answers_over_a_socket_are_litestars(
    apps: Apps, ports: tuple[int, int]
) -> None:
    """Over real connections, each kind of send answers the same bytes on both servers, and
    the fast server answers every one without going through ASGI."""
    expected = 0
    for name, steps in CASES.items():
        if name == "client gone mid-body":  # nothing is answered (see below)
            continue
        fast, plain = await run_both_over_sockets(ports, steps)
        assert fast == plain, name
        if name != "unreadable content-length":  # uvicorn refuses it before any app
            expected += len(steps)
        assert apps.served == ["/v1/messages"] * expected, name
    assert isinstance(apps.fast.fast_accept, CountingFastAccept)
    assert apps.fast.fast_accept.over_asgi == 0
    assert apps.fast.fast_accept.started > 0  # once the key and the endpoints were cached


@ON_SQLITE
async def test_sends_arriving_together_are_started_together(
    apps: Apps, ports: tuple[int, int]
) -> None:
    """Eight sends written at once on eight connections, the key and the tenant's endpoints
    cached by a first send: each is started with the others of its turn of the loop
    (``FastAccept.start``) and gets its own 202 with its own message."""
    assert (await _exchange(ports[0], json_step(HI), "warm")).status == 202
    fast = apps.fast.fast_accept
    assert isinstance(fast, CountingFastAccept)
    before = fast.started
    connections = [await asyncio.open_connection("127.0.0.1", ports[0]) for _ in range(8)]
    try:
        for _, writer in connections:
            writer.write(_request(json_step(HI), "burst"))
        answers = await asyncio.gather(*(_response(reader) for reader, _ in connections))
    finally:
        for _, writer in connections:
            writer.close()
    assert [answer.status for answer in answers] == [202] * 8
    assert len({json.loads(answer.body)["id"] for answer in answers}) == 8
    assert fast.started - before == 8


@ON_SQLITE
async def test_other_requests_over_a_socket_go_to_litestar(
    apps: Apps, ports: tuple[int, int]
) -> None:
    """Over real connections, requests the fast path does not claim are Litestar's."""
    for name, step in PASSED_ON.items():
        fast, plain = await run_both_over_sockets(ports, [step])
        assert fast == plain, name
    assert apps.served == []


@ON_SQLITE
async def test_keep_alive_and_pipelined_sends_answer_in_order(
    apps: Apps, ports: tuple[int, int]
) -> None:
    """Sends, a list and an error pipelined on one kept-alive connection are answered in
    order, each completely, and the connection stays open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    steps = [json_step(HI), Step(method="GET"), json_step('{"to": '), json_step(HI)]
    try:
        writer.write(b"".join(_request(step, "pipe") for step in steps))
        await writer.drain()
        answers = [await _response(reader, step.method) for step in steps]
        assert [answer.status for answer in answers] == [202, 200, 400, 202]
        assert b'"id":"msg_' in answers[0].body
        assert b'"id":"msg_' in answers[3].body
        assert answers[0].body != answers[3].body
        writer.write(_request(json_step(HI), "pipe"))
        assert (await _response(reader)).status == 202
    finally:
        writer.close()
    assert apps.served == ["/v1/messages"] * 4


@ON_SQLITE
async def test_connection_close_is_honoured_after_the_answer(ports: tuple[int, int]) -> None:
    """A send asking ``connection: close`` gets its answer with ``connection: close``, then
    the connection ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    try:
        writer.write(_request(json_step(HI, headers=[("connection", "close")]), "close"))
        answer = await _response(reader)
        assert answer.status == 202
        assert (b"connection", b"close") in answer.headers
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
    finally:
        writer.close()


@ON_SQLITE
async def test_a_client_gone_mid_body_leaves_the_server_serving(
    apps: Apps, ports: tuple[int, int]
) -> None:
    """A client that closes before its body is whole gets nothing written and accepts
    nothing; the next connection is answered as usual."""
    _, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    writer.write(
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TEST_KEY}\r\n"
        'content-length: 100\r\n\r\n{"to": '.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.05)
    answer = await _exchange(ports[0], json_step(HI), "after")
    assert answer.status == 202
    assert apps.served == ["/v1/messages"] * 2


@ON_SQLITE
async def test_direct_path_off_with_an_access_log(apps: Apps) -> None:
    """With uvicorn's access log on, sends go through ASGI (the log line is uvicorn's)."""
    async with serving(apps.fast, access_log=True, log_level="info") as port:
        answer = await _exchange(port, json_step(HI), "logged")
    assert answer.status == 202
    assert isinstance(apps.fast.fast_accept, CountingFastAccept)
    assert apps.fast.fast_accept.over_asgi == 1


@pytest.fixture
def lean_turns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the turns of requests taken whole, without uvicorn's parser (one entry
    per turn, the number of requests in it)."""
    from pigeon.api import http_protocol

    turns: list[int] = []
    answer = http_protocol._answer_lean_turn

    def counted(loop: asyncio.AbstractEventLoop) -> None:
        turns.append(len(http_protocol._LEAN_TURNS.get(loop, [])))
        answer(loop)

    monkeypatch.setattr(http_protocol, "_answer_lean_turn", counted)
    return turns


def _ref(step: Step, ref: str) -> Step:
    """``step``'s send with a ``client_ref`` of ``ref``."""
    return json_step(f'{{"to": "{MOBILE}", "body": "Hello", "client_ref": "{ref}"}}')


class GatedFastAccept(CountingFastAccept):
    """The counting fast path whose answers to started sends wait for ``gate``."""

    __slots__ = ("gate",)

    def __init__(self, services: ApiServices, served: list[str]) -> None:
        super().__init__(services, served)
        self.gate = asyncio.Event()

    def start_fields(self, *fields: Any) -> Any:
        """Start the send, and hold its answer until the gate opens."""
        answering = super().start_fields(*fields)
        if answering is None or isinstance(answering, FastAnswer):
            return answering

        async def gated() -> FastAnswer:
            await self.gate.wait()
            answer: FastAnswer = await answering
            return answer

        return gated()


@ON_SQLITE
async def test_whole_sends_skip_the_parser_and_answer_in_order(
    apps: Apps, services: ApiServices, lean_turns: list[int]
) -> None:
    """A send whose head and body arrive together is taken without uvicorn's parser. What
    arrives on its connection before it is answered (a send, a list, another send with
    ``connection: keep-alive``) waits, and is answered after it, in the order sent; the
    connection stays open."""
    gated = GatedFastAccept(services, apps.served)
    apps.fast.fast_accept = gated
    assert (await call(apps.fast, json_step(HI), "warm")).status == 202  # key, endpoints cached
    async with serving(apps.fast) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_request(_ref(json_step(HI), "ref-0"), "lean"))
            await writer.drain()
            for _ in range(500):
                if gated.started == 1:
                    break
                await asyncio.sleep(0.01)
            assert gated.started == 1  # taken, its answer waiting at the gate
            later = [
                _ref(json_step(HI), "ref-1"),
                Step(method="GET"),
                replace(_ref(json_step(HI), "ref-2"), headers=[("connection", "keep-alive")]),
            ]
            for step in later:
                writer.write(_request(step, "lean"))
                await writer.drain()
                await asyncio.sleep(0.02)
            gated.gate.set()
            answers = [await _response(reader)]
            answers += [await _response(reader, step.method) for step in later]
            assert [answer.status for answer in answers] == [202, 202, 200, 202]
            refs = [json.loads(answers[index].body)["client_ref"] for index in (0, 1, 3)]
            assert refs == ["ref-0", "ref-1", "ref-2"]
            writer.write(_request(_ref(json_step(HI), "ref-3"), "lean"))
            assert json.loads((await _response(reader)).body)["client_ref"] == "ref-3"
        finally:
            writer.close()
    assert lean_turns[0] == 1
    assert sum(lean_turns) >= 2  # the first and the last; those held came together or not
    assert apps.served == ["/v1/messages"] * 5


@ON_SQLITE
async def test_sends_not_whole_or_plain_are_uvicorns(
    apps: Apps, ports: tuple[int, int], lean_turns: list[int]
) -> None:
    """A send split between writes, one with ``Expect: 100-continue``, one with a chunked
    body, and two sends in one write are parsed by uvicorn, and answered as ever."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    try:
        whole = _request(json_step(HI), "split")
        head_end = whole.index(b"\r\n\r\n") + 4
        writer.write(whole[:head_end])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(whole[head_end:])
        assert (await _response(reader)).status == 202
        writer.write(whole.replace(b"host:", b"expect: 100-continue\r\nhost:"))
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert continued.startswith(b"HTTP/1.1 100")
        assert (await _response(reader)).status == 202
        writer.write(_request(Step(body=(HI.encode(),), content_length=False), "chunked"))
        assert (await _response(reader)).status == 202
        writer.write(whole + whole)
        assert [(await _response(reader)).status for _ in range(2)] == [202, 202]
    finally:
        writer.close()
    assert lean_turns == []
    assert apps.served == ["/v1/messages"] * 5


@ON_SQLITE
@pytest.mark.parametrize(
    "head",
    [
        b"host: x\r\n folded: on\r\n",  # an obsolete line folding
        b"host: x\r\nbad name: 1\r\n",  # a space in a name
        b"host: x\r\nempty\r\n",  # no colon
        b"host: x\r\ncontent-length: 5\r\n",  # a second length
        b"host: x\r\ntransfer-encoding: gzip\r\n",  # another framing
        b"host: x\r\nconnection: upgrade\r\nupgrade: h2c\r\n",  # an upgrade
    ],
)
async def test_unusual_heads_are_answered_as_uvicorn_answers_them(
    ports: tuple[int, int], lean_turns: list[int], head: bytes
) -> None:
    """A whole send with a head outside the strict form the lean path takes gets from the
    fast server what the plain server answers it (each through uvicorn's parser)."""
    body = HI.encode()

    async def answer(port: int) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\n"
                + head
                + f"authorization: Bearer {UNKNOWN_KEY}\r\n".encode()
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            return int(line.split(b" ")[1]), await asyncio.wait_for(reader.read(300), timeout=10)
        finally:
            writer.close()

    fast, plain = await answer(ports[0]), await answer(ports[1])
    assert fast[0] == plain[0]
    assert lean_turns == []


@ON_SQLITE
async def test_a_repeated_head_is_read_again_for_its_length_and_nothing_else(
    apps: Apps, ports: tuple[int, int], lean_turns: list[int]
) -> None:
    """A connection that sends the head it sent before, its length's digits aside, is read
    from its new digits (a longer body is read whole); a head that then differs anywhere
    else (another framing, another key, a length of too many digits) is checked whole again
    and answered as the plain server answers it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    try:
        for ref in ("a", "b" * 20, "c" * 120, "d"):  # lengths of 2, 2, 3 and 2 digits
            writer.write(_request(_ref(json_step(HI), ref), "repeat"))
            answer = await _response(reader)
            assert answer.status == 202
            assert json.loads(answer.body)["client_ref"] == ref
    finally:
        writer.close()
    assert sum(lean_turns) == 4
    body = HI.encode()

    def send(key: str, length: str, extra: bytes = b"") -> bytes:
        return (
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n".encode()
            + extra
            + f"content-length: {length}\r\n\r\n".encode()
            + body
        )

    plain = send(LIVE_KEY, str(len(body)))
    changed = [
        send(LIVE_KEY, str(len(body)), b"transfer-encoding: gzip\r\n"),  # uvicorn's
        send(UNKNOWN_KEY, str(len(body))),  # checked whole: still lean
        send(LIVE_KEY, "0" * 20 + str(len(body))),  # too many digits: uvicorn's
    ]
    for second in changed:

        async def answer(port: int, second: bytes = second) -> list[int]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                statuses = []
                for request in (plain, second):
                    writer.write(request)
                    statuses.append((await _response(reader)).status)
                return statuses
            finally:
                writer.close()

        assert await answer(ports[0]) == await answer(ports[1])
    assert sum(lean_turns) == 4 + 3 + 1


@ON_SQLITE
async def test_a_client_gone_before_its_lean_answer_leaves_the_server_serving(
    apps: Apps, ports: tuple[int, int], lean_turns: list[int]
) -> None:
    """A client that closes right after a whole send gets nothing and breaks nothing: its
    message is accepted, and the next connection is answered as usual."""
    _, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    writer.write(_request(json_step(HI), "gone"))
    await writer.drain()
    writer.close()
    for _ in range(100):
        if apps.served:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert (await _exchange(ports[0], json_step(HI), "after")).status == 202
    assert sum(lean_turns) == 2
    assert apps.served == ["/v1/messages"] * 2


@ON_SQLITE
async def test_an_idle_connection_closes_after_the_keep_alive_time(
    apps: Apps, lean_turns: list[int]
) -> None:
    """After a lean answer the connection waits for the next request as long as uvicorn's
    keep-alive allows, then closes."""
    async with serving(apps.fast, timeout_keep_alive=0.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_request(json_step(HI), "idle"))
            assert (await _response(reader)).status == 202
            assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        finally:
            writer.close()
    assert lean_turns == [1]


@ON_SQLITE
async def test_a_busy_connection_outlives_the_keep_alive_time_then_closes_when_idle(
    apps: Apps, lean_turns: list[int]
) -> None:
    """A connection that sends a request every 50 ms stays open past several keep-alive
    times (0.2 s); once it stops, it is closed the keep-alive time after its last answer,
    not sooner."""
    async with serving(apps.fast, timeout_keep_alive=0.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            while loop.time() - started < 0.7:
                writer.write(_request(json_step(HI), "busy"))
                assert (await _response(reader)).status == 202
                await asyncio.sleep(0.05)
            writer.write(_request(json_step(HI), "last"))
            assert (await _response(reader)).status == 202
            answered = loop.time()
            assert await asyncio.wait_for(reader.read(), timeout=10) == b""
            assert loop.time() - answered >= 0.18  # the timer's own rounding aside
        finally:
            writer.close()
    assert sum(lean_turns) >= 8


@ON_SQLITE
async def test_a_crash_over_a_socket_is_the_same_logged_500(
    services: ApiServices, lean_turns: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception from accept in a send taken whole is the 500 the plain server answers,
    and the connection stays usable."""
    crashing = _apps(replace(services, accept=cast("AcceptMessage", CrashingAccept())))
    async with serving(crashing.fast) as fast_port, serving(crashing.plain) as plain_port:
        fast, plain = await run_both_over_sockets((fast_port, plain_port), [json_step(HI)])
    assert fast == plain
    assert fast[0].status == 500
    assert sum(lean_turns) == 1
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("request_crashed") == 2
