"""Failover within one retry cycle: a carrier answering HTTP 503, or an SMPP carrier answering
ESME_RSYSERR, hands each message to the next carrier at its first failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from support.carriers import smpp_toml, start_smsc_sim
from support.fake_carrier import serve
from support.gateway import LIVE_KEY, free_port, new_gateway

SID = "AC00000000000000000000000000000503"
TENANT = {"Authorization": f"Bearer {LIVE_KEY}"}


@dataclass
class Unavailable:
    """A Twilio-style carrier that answers every submit 503, counting them."""

    url: str = ""
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def unavailable() -> AsyncIterator[Unavailable]:
    """The failing HTTP carrier on an ephemeral loopback port."""
    state = Unavailable()

    async def create(request: web.Request) -> web.Response:
        state.hits.append((await request.post()).get("Body", ""))  # type: ignore[arg-type]
        return web.json_response({"code": 20503, "message": "Service unavailable"}, status=503)

    app = web.Application()
    app.router.add_post(f"/2010-04-01/Accounts/{SID}/Messages.json", create)
    runner, state.url = await serve(app)
    try:
        yield state
    finally:
        await runner.cleanup()


async def _send_and_collect(base: str, count: int) -> list[dict[str, Any]]:
    """Send ``count`` live messages and return each one's final representation."""
    async with aiohttp.ClientSession(headers=TENANT) as session:
        sent = []
        for n in range(count):
            async with session.post(
                f"{base}/v1/messages", json={"to": "+14155550100", "body": f"failover {n}"}
            ) as response:
                assert response.status == 202, await response.text()
                sent.append((await response.json())["id"])
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        while len(final) < count and time.monotonic() < deadline:
            for message_id in sent:
                async with session.get(f"{base}/v1/messages/{message_id}") as response:
                    body = await response.json()
                if body["status"] in ("delivered", "failed", "undelivered"):
                    final[message_id] = body
            await asyncio.sleep(0.2)
    assert len(final) == count
    return list(final.values())


async def _run(tmp_path: Path, first: str, sim_faults: tuple[str, ...]) -> list[dict[str, Any]]:
    """Gateway routing to connector ``first`` then the healthy simulator ``healthy``."""
    healthy_port = free_port()
    carriers = [start_smsc_sim(healthy_port)]
    tables = smpp_toml("healthy", healthy_port)
    if sim_faults:
        failing_port = free_port()
        carriers.append(start_smsc_sim(failing_port, *sim_faults))
        tables += smpp_toml("failing", failing_port)
    config = tmp_path / "pigeon.toml"
    config.write_text(
        tables
        + first
        + '[[routes]]\nid = "main"\ndefault = true\ncandidates = ["failing", "healthy"]\n'
    )
    gateway = new_gateway(tmp_path, PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        await asyncio.to_thread(gateway.start)
        await asyncio.sleep(1.0)  # both SMPP binds up (the HTTP carrier is ready at once)
        return await _send_and_collect(gateway.base_url, 3)
    finally:
        await asyncio.to_thread(gateway.stop)
        for carrier in carriers:
            carrier.terminate()
            carrier.wait(timeout=10)


def _check_failed_over_once(bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        assert body["status"] == "delivered", body
        attempts = body["attempts"]
        assert len(attempts) == 1, attempts
        assert attempts[0]["connector"] == "failing"
        assert attempts[0]["reason"] == "temporary"
        assert attempts[0]["failover"] is True
        details = [str(e.get("detail")) for e in body["events"]]
        assert any("accepted by healthy" in detail for detail in details), details


async def test_http_503_fails_over_at_the_first_failure(
    unavailable: Unavailable, tmp_path: Path
) -> None:
    """An HTTP carrier answering 503 is tried once per message; the next carrier delivers."""
    http = (
        f'[[connectors]]\nid = "failing"\ntype = "twilio"\naccount_sid = "{SID}"\n'
        f'auth_token = "token"\nbase_url = "{unavailable.url}"\n'
        'default_from = "+14155550199"\n\n'
    )
    bodies = await _run(tmp_path, http, ())
    _check_failed_over_once(bodies)
    assert len(unavailable.hits) == 3


async def test_smpp_system_error_fails_over_at_the_first_failure(tmp_path: Path) -> None:
    """An SMPP carrier answering ESME_RSYSERR (temporary) hands each message on at once."""
    bodies = await _run(tmp_path, "", ("error:0x08",))
    _check_failed_over_once(bodies)
