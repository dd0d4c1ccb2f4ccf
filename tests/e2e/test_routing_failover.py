"""Failover across real carriers: two ``pigeon smsc-sim`` processes, the first refusing all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.carriers import smpp_toml, start_smsc_sim
from support.gateway import LIVE_KEY, GatewayProcess, free_port, new_gateway

ADMIN_KEY = "pk_live_e2e_operator_0123456789abcdef"


@dataclass
class TwoCarriers:
    """``pigeon serve`` routing to ``refusing`` then ``healthy``, each a smsc-sim process."""

    gateway: GatewayProcess


@pytest.fixture
def two_carriers(tmp_path: Path) -> Iterator[TwoCarriers]:
    """A refusing carrier first in the default route, a healthy one second."""
    refusing_port, healthy_port = free_port(), free_port()
    carriers = [start_smsc_sim(refusing_port, "error:0x45"), start_smsc_sim(healthy_port)]
    config = tmp_path / "pigeon.toml"
    config.write_text(
        smpp_toml("refusing", refusing_port)
        + smpp_toml("healthy", healthy_port)
        + '[[routes]]\nid = "main"\ndefault = true\ncandidates = ["refusing", "healthy"]\n'
    )
    gateway = new_gateway(
        tmp_path, PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY, PIGEON_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY
    )
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        gateway.start()
        yield TwoCarriers(gateway)
    finally:
        gateway.stop()
        for carrier in carriers:
            carrier.terminate()
            carrier.wait(timeout=10)


async def _explain(session: aiohttp.ClientSession, base: str, key: str) -> tuple[int, Any]:
    async with session.get(
        f"{base}/v1/routes/explain",
        params={"to": "+14155550100"},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        return response.status, await response.json()


async def test_messages_fail_over_to_the_second_carrier(two_carriers: TwoCarriers) -> None:
    """With the refusing carrier bound and first in the plan, every message is delivered
    through the second carrier; explain shows that order and is refused to tenant keys."""
    gateway = two_carriers.gateway
    async with aiohttp.ClientSession() as session:
        # Both carriers bound: explain then puts the refusing one first, as configured.
        deadline = time.monotonic() + 30
        answer: Any = None
        while time.monotonic() < deadline:
            status, answer = await _explain(session, gateway.base_url, ADMIN_KEY)
            assert status == 200, answer
            if all(c["available"] for c in answer["candidates"]):
                break
            await asyncio.sleep(0.2)
        assert answer["order"] == ["refusing", "healthy"]
        status, problem = await _explain(session, gateway.base_url, LIVE_KEY)
        assert status == 403
        assert problem["code"] == "forbidden"
        sent = []
        for _ in range(3):
            async with session.post(
                f"{gateway.base_url}/v1/messages",
                json={"to": "+14155550100", "body": "via failover"},
                headers={"Authorization": f"Bearer {LIVE_KEY}"},
            ) as response:
                assert response.status == 202, await response.text()
                sent.append((await response.json())["id"])
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        while len(final) < len(sent) and time.monotonic() < deadline:
            for message_id in sent:
                async with session.get(
                    f"{gateway.base_url}/v1/messages/{message_id}",
                    headers={"Authorization": f"Bearer {LIVE_KEY}"},
                ) as response:
                    body = await response.json()
                if body["status"] in ("delivered", "failed"):
                    final[message_id] = body
            await asyncio.sleep(0.2)
    assert set(final) == set(sent), gateway.output()
    for body in final.values():
        assert body["status"] == "delivered", body
        details = [str(e.get("detail")) for e in body["events"]]
        assert any("accepted by healthy" in detail for detail in details), details
