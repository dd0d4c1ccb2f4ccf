"""Crash safety: SIGKILL while clients stream messages loses no accepted message."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from support.gateway import API_KEY, GatewayProcess, started_gateway

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
TARGET = 300
FINAL = {"delivered", "undelivered", "expired", "failed", "rejected", "canceled", "unknown"}


async def stream(
    base: str, accepted: list[str], stop: asyncio.Event, enough: asyncio.Event
) -> None:
    """Post messages until stopped, keeping the id of every 202."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                async with session.post(
                    f"{base}/v1/messages",
                    json={"to": "+14155550100", "body": f"crash test {n}"},
                    headers=HEADERS,
                ) as response:
                    if response.status == 202:
                        accepted.append((await response.json())["id"])
                        if len(accepted) >= TARGET:
                            enough.set()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.05)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` whose job leases last an hour: only a takeover of the dead
    process's leases at restart lets its jobs run again within the test."""
    with started_gateway(tmp_path, PIGEON_LEASE_SECONDS="3600") as process:
        yield process


async def test_sigkill_mid_stream_loses_no_accepted_message(gateway: GatewayProcess) -> None:
    """Every message that got a 202 before a SIGKILL reaches a final status after restart,
    without waiting for the killed process's job leases (an hour here) to expire."""
    accepted: list[str] = []
    stop = asyncio.Event()
    enough = asyncio.Event()
    clients = [
        asyncio.create_task(stream(gateway.base_url, accepted, stop, enough)) for _ in range(8)
    ]
    await asyncio.wait_for(enough.wait(), timeout=120)
    gateway.kill()
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.gather(*clients)
    assert len(accepted) >= TARGET
    gateway.start()
    pending = set(accepted)
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while pending and time.monotonic() < deadline:
            for message_id in list(pending):
                async with session.get(
                    f"{gateway.base_url}/v1/messages/{message_id}", headers=HEADERS
                ) as response:
                    assert response.status == 200, f"{message_id} lost: {response.status}"
                    if (await response.json())["status"] in FINAL:
                        pending.discard(message_id)
            if pending:
                await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(accepted)} never reached a final status"
