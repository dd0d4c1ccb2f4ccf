"""An HTTP carrier configured in pigeon.toml: ``pigeon serve`` submits to an in-test server
playing Twilio, and the carrier's signed status callback to ``/v1/carriers/{id}/receipts``
turns the message ``delivered``; a forged signature is refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from support.fake_carrier import serve
from support.gateway import LIVE_KEY, GatewayProcess, new_gateway

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "e2e-twilio-auth-token"
TENANT = {"Authorization": f"Bearer {LIVE_KEY}"}


@dataclass
class FakeTwilio:
    """A Twilio-style Messages API recording each submitted form."""

    url: str = ""
    forms: list[dict[str, list[str]]] = field(default_factory=list)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """The fake Twilio on an ephemeral loopback port."""
    state = FakeTwilio()

    async def create(request: web.Request) -> web.Response:
        state.forms.append(parse_qs((await request.read()).decode(), keep_blank_values=True))
        return web.json_response(
            {"sid": f"SM{len(state.forms):032x}", "status": "queued"}, status=201
        )

    app = web.Application()
    app.router.add_post(f"/2010-04-01/Accounts/{SID}/Messages.json", create)
    runner, state.url = await serve(app)
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway(twilio: FakeTwilio, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    """``pigeon serve`` whose only carrier is the fake Twilio (connector ``tw``)."""
    config = tmp_path / "pigeon.toml"
    config.write_text(
        f'[[connectors]]\nid = "tw"\ntype = "twilio"\naccount_sid = "{SID}"\n'
        f'auth_token = "{TOKEN}"\nbase_url = "{twilio.url}"\ndefault_from = "+14155550199"\n'
    )
    process = new_gateway(tmp_path, PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    process.env["PIGEON_CONFIG"] = str(config)
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)


def _signature(url: str, form: dict[str, str]) -> str:
    data = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def _message(session: aiohttp.ClientSession, base: str, message_id: str) -> dict[str, Any]:
    async with session.get(f"{base}/v1/messages/{message_id}", headers=TENANT) as response:
        body: dict[str, Any] = await response.json()
        return body


async def _wait_status(
    session: aiohttp.ClientSession, base: str, message_id: str, status: str
) -> dict[str, Any]:
    end = time.monotonic() + 30
    body: dict[str, Any] = {}
    while time.monotonic() < end:
        body = await _message(session, base, message_id)
        if body["status"] == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"never {status}: {body}")


async def test_twilio_status_callback_delivers_the_message(
    gateway: GatewayProcess, twilio: FakeTwilio
) -> None:
    """The message reaches the fake Twilio with our receipts URL; a forged callback is 403 and
    changes nothing; the signed one makes the message delivered."""
    base = gateway.base_url
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/v1/messages", json={"to": "+14155550100", "body": "hi"}, headers=TENANT
        ) as response:
            assert response.status == 202, await response.text()
            message_id = (await response.json())["id"]
        await _wait_status(session, base, message_id, "sent")
        assert len(twilio.forms) == 1
        form = twilio.forms[0]
        callback = form["StatusCallback"][0]
        assert callback == f"{base}/v1/carriers/tw/receipts"
        receipt = {
            "MessageSid": f"SM{1:032x}",
            "MessageStatus": "delivered",
            "AccountSid": SID,
            "To": form["To"][0],
        }
        async with session.post(
            callback, data=receipt, headers={"X-Twilio-Signature": "forged"}
        ) as response:
            assert response.status == 403
        assert (await _message(session, base, message_id))["status"] == "sent"
        async with session.post(
            callback, data=receipt, headers={"X-Twilio-Signature": _signature(callback, receipt)}
        ) as response:
            assert response.status in (200, 204), await response.text()
        body = await _wait_status(session, base, message_id, "delivered")
        assert body["status"] == "delivered"
