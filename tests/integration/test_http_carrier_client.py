"""What every HTTP carrier connector shares, against a real HTTP server playing the carrier:
error mapping, Retry-After pauses, concurrency and throughput limits, lifecycle, secrecy."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from pigeon.connectors.http import GenericHttpConnector, GenericHttpSettings
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import CarrierError, PermanentFailure, TemporaryFailure, Throttled
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.ports import Connector
from pigeon.testing import FakeClock

TOKEN = "tok-super-secret-0123456789"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def message(to: str = "+447700900123", body: str = "Your code is 123456") -> Message:
    """An outbound message ready to dispatch."""
    info = analyse(body)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return Message(
        id="msg_01TEST",
        tenant_id="ten_test",
        direction=Direction.MT,
        to=to,
        sender="Pigeon",
        body=body,
        category=Category.OTP,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )


@dataclass
class Carrier:
    """A fake carrier on 127.0.0.1: ``handler`` answers each request; requests are kept."""

    url: str = ""
    handler: Handler | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    current: int = 0
    peak: int = 0


@pytest.fixture
async def carrier() -> AsyncIterator[Carrier]:
    """A running fake carrier that answers 200 {"id": "c-<n>"} unless told otherwise."""
    state = Carrier()

    async def handle(request: web.Request) -> web.StreamResponse:
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        state.current += 1
        state.peak = max(state.peak, state.current)
        try:
            if state.handler is not None:
                return await state.handler(request)
            return web.json_response({"id": f"c-{len(state.requests)}"})
        finally:
            state.current -= 1

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)  # the carrier's log
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def _no_receipts(receipt: DeliveryReceipt) -> None:
    raise AssertionError("no receipt expected")


@pytest.fixture
async def connect(
    carrier: Carrier,
) -> AsyncIterator[Callable[..., Awaitable[GenericHttpConnector]]]:
    """Builds started connectors to the fake carrier; all are stopped after the test."""
    made: list[GenericHttpConnector] = []

    async def build(**overrides: Any) -> GenericHttpConnector:
        settings: dict[str, Any] = {
            "id": "acme",
            "url": f"{carrier.url}/send",
            "fields": {"to": "{to}", "text": "{body}"},
            "auth": "bearer",
            "token": TOKEN,
            "timeout": 5.0,
            **overrides,
        }
        connector = GenericHttpConnector(GenericHttpSettings(**settings), _no_receipts, FakeClock())
        await connector.start()
        made.append(connector)
        return connector

    try:
        yield build
    finally:
        for connector in made:
            await connector.stop()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_http_connectors_implement_the_connector_port(
    connect: Callable[..., Awaitable[GenericHttpConnector]],
) -> None:
    """A started HTTP connector is a ready ports.Connector with its configured id."""
    connector: Connector = await connect()
    assert connector.id == "acme"
    assert connector.ready


async def test_a_success_returns_one_carrier_id_even_for_a_long_message(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """A 3-segment text goes in one request and yields one carrier id (one receipt)."""
    connector = await connect()
    long = message(body="x" * 400)
    assert long.segments == 3

    result = await connector.submit(long)

    assert result.carrier_message_ids == ("c-1",)
    assert len(carrier.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_temporary_failures(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]], status: int
) -> None:
    """5xx answers raise TemporaryFailure with code http_5xx."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=status, text="upstream trouble")

    carrier.handler = fail
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert not isinstance(caught.value, Throttled)
    assert caught.value.code == "http_5xx"
    assert str(status) in caught.value.detail


async def test_client_errors_are_permanent_with_the_carriers_code(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """A 400 raises PermanentFailure http_4xx:<carrier code> with the carrier's text."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": "INVALID_NUMBER", "text": "bad destination"}}, status=400
        )

    carrier.handler = refuse
    connector = await connect(error_code_path="error.code", error_text_path="error.text")
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_4xx:INVALID_NUMBER"
    assert "bad destination" in caught.value.detail


async def test_refused_credentials_are_temporary_unless_configured_permanent(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """401 raises TemporaryFailure http_auth; with auth_failure_permanent, PermanentFailure."""

    async def unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401)

    carrier.handler = unauthorized
    with pytest.raises(TemporaryFailure) as temporary:
        await (await connect()).submit(message())
    assert temporary.value.code == "http_auth"
    with pytest.raises(PermanentFailure) as permanent:
        await (await connect(auth_failure_permanent=True)).submit(message())
    assert permanent.value.code == "http_auth"


async def test_a_429_throttles_and_pauses_new_submits_without_calling_the_carrier(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """429 + Retry-After: 60 raises Throttled; the next submit fails fast, unsent."""

    async def slow_down(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "60"})

    carrier.handler = slow_down
    connector = await connect()
    with pytest.raises(Throttled) as first:
        await connector.submit(message())
    assert first.value.code == "http_429"
    assert "60s" in first.value.detail

    with pytest.raises(Throttled) as second:
        await connector.submit(message())
    assert second.value.code == "http_429"
    assert len(carrier.requests) == 1
    assert connector.client.paused_for > 50


async def test_a_short_retry_after_is_waited_out_by_the_next_submit(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """After a 429 asking for 0.2 s, the next submit waits and then succeeds."""

    async def once(request: web.Request) -> web.Response:
        if len(carrier.requests) == 1:
            return web.Response(status=429, headers={"Retry-After": "0.2"})
        return web.json_response({"id": "after-pause"})

    carrier.handler = once
    connector = await connect(throttle_wait_max=5.0)
    with pytest.raises(Throttled):
        await connector.submit(message())

    result = await connector.submit(message())

    assert result.carrier_message_ids == ("after-pause",)
    assert len(carrier.requests) == 2


async def test_a_503_with_retry_after_pauses_too(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """503 + Retry-After raises TemporaryFailure http_5xx and pauses new submits."""

    async def overloaded(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "30"})

    carrier.handler = overloaded
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_5xx"
    with pytest.raises(Throttled):
        await connector.submit(message())
    assert len(carrier.requests) == 1


async def test_no_answer_in_time_is_a_temporary_timeout(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """A carrier slower than the timeout gives TemporaryFailure http_timeout."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"id": "late"})

    carrier.handler = hang
    connector = await connect(timeout=0.3)
    try:
        with pytest.raises(TemporaryFailure) as caught:
            await connector.submit(message())
    finally:
        release.set()
    assert caught.value.code == "http_timeout"
    assert "may have the message" in caught.value.detail


async def test_an_unreachable_carrier_is_a_temporary_connection_failure() -> None:
    """Connection refused gives TemporaryFailure http_connection."""
    settings = GenericHttpSettings(
        id="down", url=f"http://127.0.0.1:{_closed_port()}/send", fields={"to": "{to}"}
    )
    connector = GenericHttpConnector(settings, _no_receipts, FakeClock())
    await connector.start()
    try:
        with pytest.raises(TemporaryFailure) as caught:
            await connector.submit(message())
    finally:
        await connector.stop()
    assert caught.value.code == "http_connection"
    assert "connection refused" in caught.value.detail


async def test_a_dropped_connection_is_a_temporary_connection_failure(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """A carrier that closes the socket without answering gives http_connection."""

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=200)

    carrier.handler = drop
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_connection"


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=200, text="<html>OK</html>"),
        web.json_response({"result": "ok"}),
        web.json_response({"id": None}),
        web.json_response([1, 2]),
    ],
    ids=["html", "no-id", "null-id", "array"],
)
async def test_an_unreadable_success_is_a_temporary_bad_response(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]], answer: web.Response
) -> None:
    """A 200 without a readable id gives TemporaryFailure http_bad_response."""

    async def garbage(request: web.Request) -> web.Response:
        return answer

    carrier.handler = garbage
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_bad_response"


async def test_redirects_are_not_followed(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """A 302 is an unexpected status (temporary), and its Location is never requested."""

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    carrier.handler = redirect
    connector = await connect()
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "http_unexpected_status"
    assert [r["path"] for r in carrier.requests] == ["/send"]


async def test_requests_in_flight_never_exceed_max_in_flight(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """With max_in_flight=3, ten concurrent submits reach the carrier at most three at once."""
    release = asyncio.Event()
    three = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        if carrier.current >= 3:
            three.set()
        await release.wait()
        return web.json_response({"id": f"c-{len(carrier.requests)}"})

    carrier.handler = hold
    connector = await connect(max_in_flight=3)
    submits = [asyncio.create_task(connector.submit(message())) for _ in range(10)]
    await asyncio.wait_for(three.wait(), 5)
    await asyncio.sleep(0.1)  # give a fourth request the chance to arrive if it could
    assert carrier.current == 3
    assert connector.client.in_flight == 3
    release.set()

    results = await asyncio.gather(*submits)

    assert len(results) == 10
    assert carrier.peak == 3
    assert len(carrier.requests) == 10


async def test_a_throughput_limit_still_lets_every_submit_through(
    carrier: Carrier, connect: Callable[..., Awaitable[GenericHttpConnector]]
) -> None:
    """With throughput_per_second set, a burst of submits is paced, not dropped."""
    connector = await connect(throughput_per_second=200.0)

    results = await asyncio.gather(*(connector.submit(message()) for _ in range(30)))

    assert len({r.carrier_message_ids[0] for r in results}) == 30


async def test_submits_before_start_and_after_stop_fail_temporarily(carrier: Carrier) -> None:
    """An unstarted or stopped connector raises TemporaryFailure http_not_started."""
    settings = GenericHttpSettings(id="x", url=f"{carrier.url}/send", fields={"to": "{to}"})
    connector = GenericHttpConnector(settings, _no_receipts, FakeClock())
    assert not connector.ready
    with pytest.raises(TemporaryFailure) as before:
        await connector.submit(message())
    assert before.value.code == "http_not_started"

    await connector.start()
    await connector.submit(message())
    await connector.stop()

    assert not connector.ready
    with pytest.raises(TemporaryFailure) as after:
        await connector.submit(message())
    assert after.value.code == "http_not_started"
    await connector.stop()  # idempotent


async def test_stop_lets_a_submit_in_flight_finish(carrier: Carrier) -> None:
    """A submit already at the carrier when stop() is called still gets its answer."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"id": "finished"})

    carrier.handler = slow
    settings = GenericHttpSettings(id="x", url=f"{carrier.url}/send", fields={"to": "{to}"})
    connector = GenericHttpConnector(settings, _no_receipts, FakeClock())
    await connector.start()
    submit = asyncio.create_task(connector.submit(message()))
    await arrived.wait()
    stopping = asyncio.create_task(connector.stop())
    await asyncio.sleep(0)
    release.set()

    result = await submit
    await stopping

    assert result.carrier_message_ids == ("finished",)


async def test_credentials_appear_in_no_log_repr_or_error(
    carrier: Carrier,
    connect: Callable[..., Awaitable[GenericHttpConnector]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through throttling, errors and refused connections, the token is never shown."""
    statuses = iter([429, 500, 400, 401])

    async def trouble(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        return web.Response(status=next(statuses), headers={"Retry-After": "0"})

    carrier.handler = trouble
    caplog.set_level(logging.DEBUG)
    connector = await connect(
        url=f"{carrier.url}/send?key={{token}}", fields={"to": "{to}", "key": "{token}"}
    )
    errors: list[CarrierError] = []
    for _ in range(4):
        with pytest.raises(CarrierError) as caught:
            await connector.submit(message())
        errors.append(caught.value)
    down = GenericHttpConnector(
        GenericHttpSettings(
            id="down",
            url=f"http://127.0.0.1:{_closed_port()}/send?key={{token}}",
            fields={},
            auth="header",
            token=TOKEN,
        ),
        _no_receipts,
        FakeClock(),
    )
    await down.start()
    with pytest.raises(CarrierError) as refused:
        await down.submit(message())
    await down.stop()
    errors.append(refused.value)

    assert [e.code for e in errors] == [
        "http_429",
        "http_5xx",
        "http_4xx",
        "http_auth",
        "http_connection",
    ]
    assert carrier.requests[0]["path"] == "/send"
    shown = [caplog.text, repr(connector), repr(connector.settings), repr(down)]
    shown += [f"{e!r} {e.detail}" for e in errors]
    for text in shown:
        assert TOKEN not in text
