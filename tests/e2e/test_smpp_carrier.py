"""Live traffic through a configured SMPP carrier: ``pigeon serve`` -> ``pigeon smsc-sim``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.esme import Esme
from support.gateway import (
    LIVE_KEY,
    SMPP_PASSWORD,
    SMPP_SYSTEM_ID,
    GatewayProcess,
    free_port,
    new_gateway,
)


@dataclass
class CarrierGateway:
    """``pigeon serve`` wired to a ``pigeon smsc-sim`` carrier, and a test key of its tenant."""

    gateway: GatewayProcess
    test_key: str
    control_url: str


@pytest.fixture
def carrier_gateway(tmp_path: Path) -> Iterator[CarrierGateway]:
    """A smsc-sim process and a gateway whose pigeon.toml makes it the default connector."""
    sim_port = free_port()
    control_port = free_port()
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "pigeon", "smsc-sim", "--port", str(sim_port)),
            *("--system-id", "pigeon", "--password", "s3cret", "--receipt-delay", "0.1"),
            *("--outcome", "+1415555011=UNDELIV", "--control-port", str(control_port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = tmp_path / "pigeon.toml"
    config.write_text(
        '[[connectors]]\nid = "carrier-a"\ntype = "smpp"\nhost = "127.0.0.1"\n'
        f'port = {sim_port}\nsystem_id = "pigeon"\npassword = "s3cret"\nwindow = 20\n'
        "reconnect_min_delay = 0.1\n"
    )
    gateway = new_gateway(tmp_path, PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        gateway.start()
        test_key = subprocess.run(
            [sys.executable, "-m", "pigeon", "keys", "create", "--tenant", "demo", "--test"],
            env=gateway.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(
            [sys.executable, "-m", "pigeon", "numbers", "add", "+14155550199", "--tenant", "demo"],
            env=gateway.env,
            capture_output=True,
            text=True,
            check=True,
        )
        yield CarrierGateway(gateway, test_key, f"http://127.0.0.1:{control_port}")
    finally:
        gateway.stop()
        sim.terminate()
        sim.wait(timeout=10)


async def test_live_key_goes_through_the_configured_smpp_connector(
    carrier_gateway: CarrierGateway,
) -> None:
    """A live key's message is submitted to the SMPP carrier of pigeon.toml and delivered;
    a test key's message still only reaches the built-in simulator."""
    gateway = carrier_gateway.gateway
    test_key = carrier_gateway.test_key
    assert test_key.startswith("pk_test_")
    wanted = {
        (LIVE_KEY, "+14155550100"): "delivered",
        (LIVE_KEY, "+14155550110"): "undelivered",
        (test_key, "+14155550100"): "delivered",
    }
    final: dict[tuple[str, str], dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session:
        sent = {}
        for key, to in wanted:
            async with session.post(
                f"{gateway.base_url}/v1/messages",
                json={"to": to, "body": "via smpp"},
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                assert response.status == 202, await response.text()
                sent[(key, to)] = (await response.json())["id"]
        deadline = time.monotonic() + 60
        while len(final) < len(wanted) and time.monotonic() < deadline:
            for (key, to), message_id in sent.items():
                async with session.get(
                    f"{gateway.base_url}/v1/messages/{message_id}",
                    headers={"Authorization": f"Bearer {key}"},
                ) as response:
                    body = await response.json()
                if body["status"] == wanted[(key, to)]:
                    final[(key, to)] = body
            await asyncio.sleep(0.2)
    assert set(final) == set(wanted), gateway.output()
    live_details = [str(e.get("detail")) for e in final[(LIVE_KEY, "+14155550100")]["events"]]
    assert any("carrier-a" in detail for detail in live_details)
    test_details = [str(e.get("detail")) for e in final[(test_key, "+14155550100")]["events"]]
    assert any("simulator" in detail for detail in test_details)


async def test_reply_from_the_carrier_reaches_the_number_owner(
    carrier_gateway: CarrierGateway,
) -> None:
    """An MO deliver_sm to a number in the inventory becomes the owner's received message."""
    gateway = carrier_gateway.gateway
    headers = {"Authorization": f"Bearer {LIVE_KEY}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{carrier_gateway.control_url}/mo",
            json={"source": "+447400123456", "destination": "14155550199", "text": "STOP"},
        ) as response:
            assert response.status == 202, await response.text()
        inbound: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not inbound and time.monotonic() < deadline:
            async with session.get(f"{gateway.base_url}/v1/messages", headers=headers) as response:
                page = await response.json()
            inbound = [m for m in page["data"] if m["direction"] == "inbound"]
            await asyncio.sleep(0.2)
    assert inbound, gateway.output()
    [reply] = inbound
    assert (reply["status"], reply["from"], reply["to"], reply["body"]) == (
        "received",
        "+447400123456",
        "+14155550199",
        "STOP",
    )


async def test_reply_reaches_the_owners_bound_smpp_session(
    carrier_gateway: CarrierGateway,
) -> None:
    """A carrier's MO to the tenant's number is handed to the tenant's bound SMPP receiver."""
    gateway = carrier_gateway.gateway
    async with await Esme.open(gateway.smpp_port) as esme:
        bound = await esme.bind(SMPP_SYSTEM_ID, SMPP_PASSWORD, mode="rx", timeout=30)
        assert bound.command_status == 0
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{carrier_gateway.control_url}/mo",
                json={"source": "+447400123456", "destination": "+14155550199", "text": "HELP"},
            ) as response,
        ):
            assert response.status == 202, await response.text()
        await esme.wait_for(lambda: bool(esme.delivered), timeout=30)
    [reply] = esme.delivered
    assert reply.short_message == b"HELP"
    assert reply.source_addr.lstrip("+") == "447400123456"
    assert reply.destination_addr.lstrip("+") == "14155550199"


def test_bad_connector_settings_stop_serve_with_a_clear_error(tmp_path: Path) -> None:
    """An unknown or invalid [[connectors]] setting makes serve exit 2 and name it."""
    config = tmp_path / "pigeon.toml"
    config.write_text(
        '[[connectors]]\nid = "x"\ntype = "smpp"\nhost = "127.0.0.1"\nport = 1\n'
        'system_id = "a"\nwindoww = 3\n'
    )
    gateway = new_gateway(tmp_path)
    gateway.env["PIGEON_CONFIG"] = str(config)
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve"],
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "windoww" in result.stderr
