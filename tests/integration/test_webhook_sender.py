"""The aiohttp webhook sender against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from pigeon.domain.errors import TemporaryFailure
from pigeon.ports import WebhookSender
from pigeon.webhooks.sender import MAX_RESPONSE_BYTES, AiohttpWebhookSender
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
async def sender() -> AsyncIterator[AiohttpWebhookSender]:
    """A sender that is closed after the test."""
    client = AiohttpWebhookSender()
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
    """AiohttpWebhookSender satisfies the WebhookSender protocol."""
    port: WebhookSender = AiohttpWebhookSender()
    assert callable(port.send)


async def test_delivers_body_and_headers_intact_and_signature_verifies(
    receiver: Receiver, sender: AiohttpWebhookSender
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
    receiver: Receiver, sender: AiohttpWebhookSender
) -> None:
    """A body that does not match its signature fails verify() at the receiver."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    status = await sender.send(f"{receiver.base_url}/hook", headers, BODY + b" ", timeout=5)

    assert status == 401
    assert not receiver.requests[0].verified


@pytest.mark.parametrize("code", [500, 410, 404, 429])
async def test_error_statuses_are_returned(
    receiver: Receiver, sender: AiohttpWebhookSender, code: int
) -> None:
    """Non-2xx answers such as 500 and 410 come back as the status, not as an exception."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    assert await sender.send(f"{receiver.base_url}/status/{code}", headers, BODY, timeout=5) == code


async def test_redirects_are_not_followed(receiver: Receiver, sender: AiohttpWebhookSender) -> None:
    """A 302 is returned as-is and its Location is never requested."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    status = await sender.send(f"{receiver.base_url}/redirect", headers, BODY, timeout=5)

    assert status == 302
    assert [r.path for r in receiver.requests] == ["/redirect"]


async def test_a_huge_response_body_is_cut_off_and_the_sender_still_works(
    receiver: Receiver, sender: AiohttpWebhookSender
) -> None:
    """A response far beyond 64 KiB yields its status, its connection is dropped, sends go on."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)
    assert MAX_RESPONSE_BYTES == 64 * 1024

    assert await sender.send(f"{receiver.base_url}/big", headers, BODY, timeout=5) == 200
    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204
    # The half-read connection was dropped, not handed back to the pool.
    assert receiver.requests[0].peer != receiver.requests[1].peer


async def test_connections_are_reused_between_sends(
    receiver: Receiver, sender: AiohttpWebhookSender
) -> None:
    """Consecutive deliveries to one host go over the same pooled keep-alive connection."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    for _ in range(3):
        assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204

    assert len({r.peer for r in receiver.requests}) == 1


async def test_connection_refused_raises_temporary_failure(sender: AiohttpWebhookSender) -> None:
    """Posting to a closed port raises TemporaryFailure naming the address."""
    port = _closed_port()

    with pytest.raises(
        TemporaryFailure, match=rf"cannot connect to 127\.0\.0\.1:{port}: connection refused"
    ):
        await sender.send(f"http://127.0.0.1:{port}/hook", {}, BODY, timeout=5)


async def test_timeout_raises_temporary_failure(
    receiver: Receiver, sender: AiohttpWebhookSender
) -> None:
    """A receiver slower than the timeout makes send raise TemporaryFailure promptly."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)

    with pytest.raises(TemporaryFailure, match=r"timed out after 0\.2s"):
        await sender.send(f"{receiver.base_url}/slow", headers, BODY, timeout=0.2)

    assert len(receiver.requests) == 1


async def test_invalid_url_raises_temporary_failure(sender: AiohttpWebhookSender) -> None:
    """A URL that is not http(s) raises TemporaryFailure instead of leaking aiohttp errors."""
    with pytest.raises(TemporaryFailure, match="not an http"):
        await sender.send("ftp://127.0.0.1/hook", {}, BODY, timeout=1)


async def test_close_is_idempotent_and_send_reopens(
    receiver: Receiver, sender: AiohttpWebhookSender
) -> None:
    """close() may be called twice, and a later send opens a fresh session."""
    headers = signature_headers(SECRET, "evt_1", int(time.time()), BODY)
    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204

    await sender.close()
    await sender.close()

    assert await sender.send(f"{receiver.base_url}/hook", headers, BODY, timeout=5) == 204


async def test_close_without_send_does_nothing() -> None:
    """Closing a sender that never sent anything is harmless."""
    await AiohttpWebhookSender().close()
