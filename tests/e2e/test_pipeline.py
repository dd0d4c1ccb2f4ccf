"""The whole embedded pipeline as a real process: REST -> simulator -> receipt -> webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pigeon.webhooks.signing import verify
from support.gateway import API_KEY, GatewayProcess

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


class WebhookReceiver:
    """A local HTTP server that keeps every webhook it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A running webhook receiver on loopback."""
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


async def wait_for_status(
    session: aiohttp.ClientSession, base: str, message_id: str, wanted: set[str], timeout: float
) -> dict[str, Any]:
    """Poll a message until its status is in ``wanted``."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        async with session.get(f"{base}/v1/messages/{message_id}", headers=HEADERS) as response:
            body = await response.json()
        if body.get("status") in wanted:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} stayed {body.get('status')}, wanted {wanted}")


async def test_message_is_delivered_and_webhooks_are_signed(
    gateway: GatewayProcess, receiver: WebhookReceiver
) -> None:
    """A sent message reaches delivered and the endpoint gets verifiable sent/delivered events."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{gateway.base_url}/v1/webhook-endpoints",
            json={"url": receiver.url},
            headers=HEADERS,
        ) as response:
            assert response.status == 201, await response.text()
            secret = (await response.json())["secret"]
        async with session.post(
            f"{gateway.base_url}/v1/messages",
            json={"to": "+14155550100", "body": "Your code is 123456"},
            headers=HEADERS,
        ) as response:
            assert response.status == 202, await response.text()
            message = await response.json()
        final = await wait_for_status(
            session, gateway.base_url, message["id"], {"delivered"}, timeout=30
        )
        assert [e["status"] for e in final["events"]][-1] == "delivered"
        deadline = time.monotonic() + 20
        types: list[str] = []
        while time.monotonic() < deadline:
            types = [json.loads(body)["type"] for _, body in receiver.received]
            if "message.delivered" in types:
                break
            await asyncio.sleep(0.1)
    assert {"message.sent", "message.delivered"} <= set(types)
    now = int(time.time())
    for headers, body in receiver.received:
        verify(secret, headers, body, now)
        event = json.loads(body)
        assert event["data"]["id"] == message["id"]
    sequences = [json.loads(body)["data"]["status_sequence"] for _, body in receiver.received]
    assert len(set(sequences)) == len(sequences)


async def test_magic_numbers_give_each_outcome(gateway: GatewayProcess) -> None:
    """The simulator's magic numbers yield undelivered, expired and failed outcomes."""
    cases = {
        "+14155550110": "undelivered",
        "+14155550120": "expired",
        "+14155550130": "failed",
    }
    async with aiohttp.ClientSession() as session:
        ids = {}
        for number, outcome in cases.items():
            async with session.post(
                f"{gateway.base_url}/v1/messages",
                json={"to": number, "body": "outcome test"},
                headers=HEADERS,
            ) as response:
                assert response.status == 202, await response.text()
                ids[outcome] = (await response.json())["id"]
        for outcome, message_id in ids.items():
            final = await wait_for_status(
                session, gateway.base_url, message_id, {outcome}, timeout=30
            )
            assert final["status"] == outcome
