"""The webhook sender against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from pigeon.domain.errors import TemporaryFailure
from pigeon.ports import WebhookSender
from pigeon.webhooks import http_client
from pigeon.webhooks.sender import MAX_RESPONSE_BYTES, USER_AGENT, HttpWebhookSender
from pigeon.webhooks.signing import new_secret, signature_headers, verify

SECRET = new_secret()
BODY = b'{"id":"evt_1","type":"message.delivered","data":{"text":"h\xc3\xa9llo"}}'


@dataclass
class Received:
    """What the test server saw of one request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    peer: tuple[str, int]


@dataclass
class Receiver:
    """A running test server and what it received."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real aiohttp server on an ephemeral loopback port."""
    state = Receiver(base_url="")

    async def record(request: web.Request) -> None:
        body = await request.read()
        try:
            verify(SECRET, request.headers, body, now=int(time.time()))
            verified = True
        except ValueError:
            verified = False
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state.requests.append(
            Received(
                method=request.method,
                path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                verified=verified,
                peer=tuple(peer) if peer else ("", 0),
            )
        )

    async def hook(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204 if state.requests[-1].verified else 401)

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=302, headers={"Location": "/hook"})

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await state.release.wait()
        return web.Response(status=200)

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"x" * 16384
        try:
            for _ in range(64):  # 1 MiB, far more than the sender reads
                await response.write(chunk)
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/slow", slow)
    app.router.add_post("/big", big)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.base_url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[HttpWebhookSender]:
    """A sender that is closed after the test."""
    client = HttpWebhookSender()
    try:
        yield client
    finally:
        await client.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_sender_implements_the_port() -> None:
    """HttpWebhookSender satisfies the WebhookSender protocol."""
    port: WebhookSender = HttpWebhookSender()
    assert callable(port.send)


async def test_delivers_body_and_headers_intact_and_signature_verifies(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """The receiver gets the exact body and headers, and verify() accepts the signature."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    status = await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5)

    assert status == 204
    [got] = receiver.requests
    assert got.method == "POST"
    assert got.body == BODY
    assert got.verified
    for name, value in headers.items():
        assert got.headers[name] == value
    assert got.headers["user-agent"].startswith("Pigeon-Webhooks/")


async def test_receiver_rejects_a_tampered_delivery(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """A body that does not match its signature fails verify() at the receiver."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    status = await sender.send(f"{receiver.base_url}/hook", headers, BODY + b" ", timeout=5)

    assert status == 401
    assert not receiver.requests[0].verified


@pytest.mark.parametrize("code", [500, 410, 404, 429])
async def test_error_statuses_are_returned(
    receiver: Receiver, sender: HttpWebhookSender, code: int
) -> None:
    """Non-2xx answers such as 500 and 410 come back as the status, not as an exception."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    assert await sender.send(f"{receiver.base_url}/status/{code}", headers, BODY, timeout=5) == code


async def test_redirects_are_not_followed(receiver: Receiver, sender: HttpWebhookSender) -> None:
    """A 302 is returned as-is and its Location is never requested."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    status = await sender.send(f"{receiver.base_url}/redirect", headers, BODY, timeout=5)

    assert status == 302
    assert [r.path for r in receiver.requests] == ["/redirect"]


async def test_a_huge_response_body_is_cut_off_and_the_sender_still_works(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """A response far beyond 64 KiB yields its status, its connection is dropped, sends go on."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)
    assert MAX_RESPONSE_BYTES == 64 * 1024

    assert await sender.send(f"{receiver.base_url}/big", headers, BODY, timeout=5) == 200
    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204
    # The half-read connection was dropped, not handed back to the pool.
    assert receiver.requests[0].peer != receiver.requests[1].peer


async def test_connections_are_reused_between_sends(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """Consecutive deliveries to one host go over the same pooled keep-alive connection."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    for _ in range(3):
        assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204

    assert len({r.peer for r in receiver.requests}) == 1


async def test_connection_refused_raises_temporary_failure(sender: HttpWebhookSender) -> None:
    """Posting to a closed port raises TemporaryFailure naming the address."""
    port = _closed_port()

    with pytest.raises(
        TemporaryFailure, match=rf"cannot connect to 127\.0\.0\.1:{port}: connection refused"
    ):
        await sender.send(f"http://127.0.0.1:{port}/hook", {}, BODY, timeout=5)


async def test_timeout_raises_temporary_failure(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """A receiver slower than the timeout makes send raise TemporaryFailure promptly."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    with pytest.raises(TemporaryFailure, match=r"timed out after 0\.2s"):
        await sender.send(f"{receiver.base_url}/slow", headers, BODY, timeout=0.2)

    await _until(lambda: len(receiver.requests) == 1)  # the receiver's handler may run late


async def test_invalid_url_raises_temporary_failure(sender: HttpWebhookSender) -> None:
    """A URL that is not http(s) raises TemporaryFailure instead of leaking client errors."""
    with pytest.raises(TemporaryFailure, match="not an http"):
        await sender.send("ftp://127.0.0.1/hook", {}, BODY, timeout=1)


async def test_close_is_idempotent_and_send_reopens(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """close() may be called twice, and a later send opens a fresh pool."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)
    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204

    await sender.close()
    await sender.close()

    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204


async def test_close_without_send_does_nothing() -> None:
    """Closing a sender that never sent anything is harmless."""
    await HttpWebhookSender().close()


# --- the HTTP/1.1 client against hand-written servers -----------------------------------------


@dataclass(frozen=True)
class Closing:
    """An answer after which the raw server closes the connection."""

    data: bytes


Answer = Callable[[int, int, bytes], Awaitable[bytes | Closing | None]]
"""How a raw server answers: (connection number, request number on it, request) -> bytes to
write, ``Closing`` to write and hang up, or None to hang up without answering."""


@dataclass
class RawServer:
    """An asyncio TCP server on 127.0.0.1 speaking HTTP by hand, and what it saw."""

    port: int
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[int, bytes]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        """A URL of this server."""
        return f"http://127.0.0.1:{self.port}{path}"


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request, head and body, or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[RawServer]:
    """Serve ``answer`` on an ephemeral loopback port; every connection is closed afterwards."""
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task[None]] = set()
    state = RawServer(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        state.connections += 1
        number = state.connections
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            for index in itertools.count():
                request = await _read_request(reader)
                if request is None:
                    break
                state.requests.append((number, request))
                reply = await answer(number, index, request)
                if reply is None:
                    break
                writer.write(reply.data if isinstance(reply, Closing) else reply)
                await writer.drain()
                if isinstance(reply, Closing):
                    break
        except ConnectionError:
            pass
        finally:
            state.open_now -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _ok(body: bytes = b"", *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_sequential_requests_share_one_keep_alive_connection() -> None:
    """The server sees a single TCP connection for several sequential deliveries."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok(b"thanks")

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            for _ in range(4):
                assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 1
    assert len(server.requests) == 4


async def test_request_head_carries_host_agent_length_and_caller_headers() -> None:
    """The request is a POST of path+query with Host (port included), our User-Agent, the
    Content-Length and the caller's headers."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            url = server.url("/a/b?x=1&y=%20z")
            assert await sender.send(url, {"X-Custom": "v", "Content-Type": "a/b"}, BODY, 5) == 200
    finally:
        await sender.close()
    [(_, request)] = server.requests
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /a/b?x=1&y=%20z HTTP/1.1"
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert fields["host"] == f"127.0.0.1:{server.port}"
    assert fields["user-agent"] == USER_AGENT
    assert fields["content-length"] == str(len(BODY))
    assert fields["x-custom"] == "v"
    assert fields["content-type"] == "a/b"
    assert "cookie" not in fields
    assert body == BODY


async def test_an_idle_connection_closed_by_the_server_is_retried_on_a_new_one() -> None:
    """A pooled connection lost before any answer byte gets the request again, once, on a
    freshly opened connection."""

    async def answer(conn: int, index: int, request: bytes) -> bytes | None:
        # The first connection answers once, then "times out" just as the next request comes.
        return None if (conn, index) == (1, 1) else _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 2
    assert [conn for conn, _ in server.requests] == [1, 1, 2]


async def test_a_new_connection_closed_without_answer_is_not_retried() -> None:
    """On a freshly opened connection, a server hanging up without answering is a failure."""

    async def answer(conn: int, index: int, request: bytes) -> None:
        return None

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            with pytest.raises(TemporaryFailure, match="server disconnected without answering"):
                await sender.send(server.url(), {}, BODY, timeout=5)
    finally:
        await sender.close()
    assert server.connections == 1


async def test_chunked_response_is_read_and_the_connection_reused() -> None:
    """A chunked answer gives its status, and the connection serves the next request."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return (
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 202
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 202
    finally:
        await sender.close()
    assert server.connections == 1


async def test_a_body_over_64_kib_costs_the_connection() -> None:
    """An answer with more than MAX_RESPONSE_BYTES of body yields its status; the connection is
    not reused."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok(b"y" * (MAX_RESPONSE_BYTES + 1) if conn == 1 else b"")

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 2


async def test_a_body_of_exactly_64_kib_keeps_the_connection() -> None:
    """An answer of exactly MAX_RESPONSE_BYTES is read in full and its connection reused."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok(b"y" * MAX_RESPONSE_BYTES)

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 1


async def test_connection_close_is_honoured() -> None:
    """After an answer with ``Connection: close`` the next request opens a new connection."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok(b"bye", extra=b"Connection: close\r\n")

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 2


async def test_interim_100_continue_is_skipped() -> None:
    """A ``100 Continue`` before the answer is skipped; the final status is returned."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"done")

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 1


async def test_close_delimited_body_gives_the_status() -> None:
    """An HTTP/1.0 answer whose body ends with the connection gives its status."""

    async def answer(conn: int, index: int, request: bytes) -> Closing:
        return Closing(b"HTTP/1.0 201 Created\r\n\r\nsome body until the end")

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 201
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 201
    finally:
        await sender.close()
    assert server.connections == 2


async def test_timeout_after_the_status_returns_the_status() -> None:
    """When the body stalls after the status line, the timeout returns the status."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part"

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            # Long enough for the status line on a busy machine; the body stalls to the end.
            assert await sender.send(server.url(), {}, BODY, timeout=1.5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=1.5) == 200
    finally:
        await sender.close()
    assert server.connections == 2  # the half-read connection was not reused


async def test_timeout_before_the_status_raises() -> None:
    """A server that never answers makes send raise TemporaryFailure naming the timeout."""
    release = asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        await release.wait()
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            with pytest.raises(TemporaryFailure, match=r"^timed out after 0\.2s$"):
                await sender.send(server.url(), {}, BODY, timeout=0.2)
            release.set()
    finally:
        await sender.close()


async def test_a_reused_connection_times_out_on_its_deadline() -> None:
    """A request on a kept-alive connection runs out of time as any other: a stalled answer
    raises with the timeout, one whose status came returns it; the connection is not reused."""
    release = asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        if index == 1 and conn == 1:
            await release.wait()
        if index == 1 and conn == 2:
            return b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nonly a part"
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            with pytest.raises(TemporaryFailure, match=r"^timed out after 0\.2s$"):
                await sender.send(server.url(), {}, BODY, timeout=0.2)
            release.set()
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(server.url(), {}, BODY, timeout=0.5) == 202
    finally:
        await sender.close()
    assert server.connections == 2
    assert [number for number, _ in server.requests] == [1, 1, 2, 2]


async def test_requests_on_reused_connections_each_keep_their_own_deadline() -> None:
    """Concurrent requests on kept-alive connections with different timeouts: each expires
    at its own deadline, and one answered in time is not cut short by an earlier one's."""
    answered, release = asyncio.Event(), asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        if index == 1 and b"slow" in request:
            await asyncio.sleep(0.3)
            answered.set()
        elif index == 1 and b"never" in request:
            await release.wait()
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            urls = [server.url(f"/{name}") for name in ("never", "slow", "never-either")]
            await asyncio.gather(*(sender.send(url, {}, BODY, timeout=5) for url in urls))
            assert server.connections == 3
            outcomes = await asyncio.gather(
                sender.send(urls[0], {}, BODY, timeout=0.1),
                sender.send(urls[1], {}, BODY, timeout=3.0),
                sender.send(urls[2], {}, BODY, timeout=0.6),
                return_exceptions=True,
            )
            release.set()
    finally:
        await sender.close()
    assert answered.is_set()
    assert outcomes[1] == 200
    assert [str(o) for o in (outcomes[0], outcomes[2])] == [
        "timed out after 0.1s",
        "timed out after 0.6s",
    ]


async def test_malformed_answer_raises_temporary_failure() -> None:
    """An answer that is not HTTP raises TemporaryFailure and drops the connection."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return b"SMTP ready\r\n\r\n" if conn == 1 else _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            with pytest.raises(TemporaryFailure, match="BadResponse"):
                await sender.send(server.url(), {}, BODY, timeout=5)
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 2


async def test_limit_per_host_caps_concurrent_connections() -> None:
    """With limit_per_host=2, five concurrent sends use at most two connections at once."""
    arrived = asyncio.Event()
    waiting = 0

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        nonlocal waiting
        waiting += 1
        if waiting >= 2:
            arrived.set()
        await arrived.wait()
        return _ok()

    sender = HttpWebhookSender(limit=10, limit_per_host=2)
    try:
        async with raw_server(answer) as server:
            statuses = await asyncio.gather(
                *(sender.send(server.url(), {}, BODY, timeout=5) for _ in range(5))
            )
    finally:
        await sender.close()
    assert statuses == [200] * 5
    assert server.most_open == 2
    assert server.connections == 2


async def test_limit_caps_connections_across_hosts() -> None:
    """With limit=2, sends to two hosts never hold more than two connections in all."""
    open_now = 0
    most_open = 0

    async def answer(conn: int, index: int, request: bytes) -> Closing:
        nonlocal open_now, most_open
        open_now += 1
        most_open = max(most_open, open_now)
        await asyncio.sleep(0.01)
        open_now -= 1
        return Closing(_ok())

    sender = HttpWebhookSender(limit=2, limit_per_host=2)
    try:
        async with raw_server(answer) as one, raw_server(answer) as two:
            statuses = await asyncio.gather(
                *(sender.send(server.url(), {}, BODY, timeout=5) for server in [one, two] * 4)
            )
    finally:
        await sender.close()
    assert statuses == [200] * 8
    assert most_open == 2
    assert one.most_open + two.most_open <= 3  # a closing socket may linger a moment


async def test_https_to_a_plain_http_port_is_a_tls_error(
    receiver: Receiver, sender: HttpWebhookSender
) -> None:
    """Speaking TLS to a plain HTTP server raises TemporaryFailure("TLS error with host:port")."""
    url = receiver.base_url.replace("http://", "https://") + "/hook"
    host_port = receiver.base_url.removeprefix("http://")

    with pytest.raises(TemporaryFailure) as caught:
        await sender.send(url, {}, BODY, timeout=5)

    assert str(caught.value) == f"TLS error with {host_port}"


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http:///hook", "invalid URL http:///hook"),
        ("http://127.0.0.1:99999/hook", "invalid URL http://127.0.0.1:99999/hook"),
        ("http//127.0.0.1/hook", "invalid URL http//127.0.0.1/hook"),
        ("mailto:ops@example.com", "not an http(s) URL: mailto:ops@example.com"),
    ],
)
async def test_unusable_urls_have_the_former_details(url: str, detail: str) -> None:
    """Invalid and non-http URLs raise TemporaryFailure with the same detail as before."""
    sender = HttpWebhookSender()
    try:
        with pytest.raises(TemporaryFailure) as caught:
            await sender.send(url, {}, BODY, timeout=1)
    finally:
        await sender.close()
    assert str(caught.value) == detail


async def test_a_sender_belongs_to_the_loop_of_its_first_use(receiver: Receiver) -> None:
    """Using a sender from a second event loop raises RuntimeError; after close it may move."""
    sender = HttpWebhookSender()
    url = f"{receiver.base_url}/status/200"
    try:
        assert await sender.send(url, {}, BODY, timeout=5) == 200

        def elsewhere() -> None:
            with pytest.raises(RuntimeError, match="another event loop"):
                asyncio.run(sender.send(url, {}, BODY, timeout=5))

        await asyncio.to_thread(elsewhere)
    finally:
        await sender.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_idle_connections_expire_after_the_keep_alive_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooled connection idle for KEEPALIVE_SECONDS is closed; the next send opens another."""
    monkeypatch.setattr(http_client, "KEEPALIVE_SECONDS", 0.05)

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            await _until(lambda: server.open_now == 0)
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
    finally:
        await sender.close()
    assert server.connections == 2


async def test_close_closes_pooled_connections() -> None:
    """close() hangs up every kept-alive connection."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok()

    sender = HttpWebhookSender()
    async with raw_server(answer) as server:
        assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
        assert server.open_now == 1
        await sender.close()
        await _until(lambda: server.open_now == 0)


async def test_the_total_limit_evicts_an_idle_connection_of_another_host() -> None:
    """With limit=1, a send to a second host closes the first host's idle connection."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok()

    sender = HttpWebhookSender(limit=1, limit_per_host=1)
    try:
        async with raw_server(answer) as one, raw_server(answer) as two:
            assert await sender.send(one.url(), {}, BODY, timeout=5) == 200
            assert await sender.send(two.url(), {}, BODY, timeout=5) == 200
            await _until(lambda: one.open_now == 0)
            assert two.open_now == 1
    finally:
        await sender.close()


# --- posts started without a coroutine (``start_send``) -----------------------------------------


async def test_start_send_needs_an_idle_connection_and_then_ends_as_send() -> None:
    """With no idle connection to the host ``start_send`` starts nothing (``None``); once a
    send left one idle, it posts on it at once and its future gives the status."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert sender.start_send(server.url(), {}, BODY, 5) is None
            assert server.requests == []
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 202
            started = sender.start_send(server.url(), {"X-Started": "1"}, BODY, 5)
            assert started is not None
            assert await started == 202
            assert sender.start_send(server.url(), {}, BODY, 0) is None  # no deadline: send
    finally:
        await sender.close()
    assert server.connections == 1
    assert b"x-started: 1" in server.requests[1][1].lower()


async def test_a_started_post_on_a_connection_the_server_closed_goes_again_on_a_new_one() -> None:
    """A started post whose idle connection the server had closed is posted again, once, on
    a new connection, and its future gives that answer's status."""

    async def answer(conn: int, index: int, request: bytes) -> bytes | None:
        return None if (conn, index) == (1, 1) else _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            started = sender.start_send(server.url(), {}, BODY, 5)
            assert started is not None
            assert await started == 200
    finally:
        await sender.close()
    assert server.connections == 2
    assert [conn for conn, _ in server.requests] == [1, 1, 2]


async def test_a_started_post_times_out_or_fails_as_send_does() -> None:
    """A started post left unanswered fails with ``send``'s timeout error at its deadline; a
    server answering garbage fails it with ``send``'s error for that."""
    release = asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        if index == 1 and conn == 1:
            await release.wait()
        if index == 1 and conn == 2:
            return b"NOT HTTP AT ALL\r\n\r\n"
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            stalled = sender.start_send(server.url(), {}, BODY, 0.2)
            assert stalled is not None
            with pytest.raises(TemporaryFailure, match=r"^timed out after 0\.2s$"):
                await stalled
            release.set()
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            garbage = sender.start_send(server.url(), {}, BODY, 5)
            assert garbage is not None
            with pytest.raises(TemporaryFailure):
                await garbage
    finally:
        await sender.close()


async def test_a_started_post_with_a_header_that_would_split_it_starts_nothing() -> None:
    """A header with a line break: ``start_send`` starts nothing and leaves the idle
    connection as it was (the next post goes out on it); ``send`` then refuses the header."""

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        return _ok()

    sender = HttpWebhookSender()
    try:
        async with raw_server(answer) as server:
            assert await sender.send(server.url(), {}, BODY, timeout=5) == 200
            assert sender.start_send(server.url(), {"X-Bad": "a\r\nb"}, BODY, 5) is None
            started = sender.start_send(server.url(), {}, BODY, 5)
            assert started is not None
            assert await started == 200
            with pytest.raises(ValueError, match="newline"):
                await sender.send(server.url(), {"X-Bad": "a\r\nb"}, BODY, timeout=5)
    finally:
        await sender.close()
    assert server.connections == 1
    assert len(server.requests) == 2


# --- waiting for a busy receiver's connections (``connection_wait``) ---------------------------


async def _in_flight(sender: HttpWebhookSender, server: RawServer, nth: int) -> asyncio.Future[int]:
    """A ``send`` started, once the server holds its request (the ``nth`` it got)."""
    busy = asyncio.ensure_future(sender.send(server.url(), {}, BODY, timeout=5))
    await _until(lambda: len(server.requests) == nth)
    return busy


async def test_connection_wait_ends_when_a_busy_connection_comes_back() -> None:
    """With every connection to the host busy at its cap, ``connection_wait`` gives a future
    that the answer freeing one ends, and ``start_send`` then posts on that connection; with
    room to open one, or one idle, there is nothing to wait for (``None``)."""
    release = asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes:
        if index == 0:
            await release.wait()
        return _ok()

    sender = HttpWebhookSender(limit_per_host=1)
    try:
        async with raw_server(answer) as server:
            assert sender.connection_wait(server.url()) is None  # room to open one
            busy = await _in_flight(sender, server, 1)
            assert sender.start_send(server.url(), {}, BODY, 5) is None
            wait = sender.connection_wait(server.url())
            assert wait is not None
            await asyncio.sleep(0.05)
            assert not wait.done()
            release.set()
            await asyncio.wait_for(wait, 5)
            started = sender.start_send(server.url(), {}, BODY, 5)
            assert started is not None
            assert await started == 200
            assert await busy == 200
            assert sender.connection_wait(server.url()) is None  # one idle now
    finally:
        await sender.close()
    assert server.connections == 1


async def test_connection_waits_yield_to_queued_sends_and_all_end_when_one_closes() -> None:
    """A ``send`` already queued for the host goes first: ``connection_wait`` is ``None``
    then (join the queue). A connection that closes ends every wait (each may open one
    now); and ``close`` ends those left."""
    release = asyncio.Event()
    hold = asyncio.Event()

    async def answer(conn: int, index: int, request: bytes) -> bytes | None:
        if conn == 1:
            await release.wait()
            return None  # closed without an answer
        if index == 1:
            await hold.wait()
        return _ok()

    sender = HttpWebhookSender(limit_per_host=1)
    try:
        async with raw_server(answer) as server:
            busy = await _in_flight(sender, server, 1)
            waits = [sender.connection_wait(server.url()) for _ in range(2)]
            queued = asyncio.ensure_future(sender.send(server.url(), {}, BODY, timeout=5))
            await asyncio.sleep(0.02)
            assert sender.connection_wait(server.url()) is None  # behind the queued send
            release.set()
            with pytest.raises(TemporaryFailure):
                await busy
            assert await queued == 200
            for wait in waits:
                assert wait is not None
                await asyncio.wait_for(wait, 5)
            held = await _in_flight(sender, server, 3)
            left = sender.connection_wait(server.url())
            assert left is not None
            await sender.close()
            assert left.done()
            hold.set()
            await asyncio.gather(held, return_exceptions=True)
    finally:
        await sender.close()
    assert server.connections == 2
