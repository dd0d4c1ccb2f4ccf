"""Connectors and routes changed while ``pigeon serve`` runs, through the REST API and through
the CLI on the same database, take effect without a restart (two ``pigeon smsc-sim`` carriers)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.carriers import smpp_options, smpp_toml, start_smsc_sim
from support.gateway import LIVE_KEY, GatewayProcess, free_port, new_gateway

ADMIN_KEY = "pk_live_e2e_operator_0123456789abcdef"
OPERATOR = {"Authorization": f"Bearer {ADMIN_KEY}"}
TENANT = {"Authorization": f"Bearer {LIVE_KEY}"}


@pytest.fixture
def live_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, int]]:
    """``pigeon serve`` with carrier ``first`` from pigeon.toml (the default route), and the
    port of a second, not yet configured carrier."""
    first_port, second_port = free_port(), free_port()
    carriers = [start_smsc_sim(first_port), start_smsc_sim(second_port)]
    config = tmp_path / "pigeon.toml"
    config.write_text(smpp_toml("first", first_port))
    gateway = new_gateway(
        tmp_path, PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY, PIGEON_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY
    )
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        gateway.start()
        yield gateway, second_port
    finally:
        gateway.stop()
        for carrier in carriers:
            carrier.terminate()
            carrier.wait(timeout=10)


async def _wait_for_plan(
    session: aiohttp.ClientSession, base: str, chosen: str, deadline: float = 30
) -> dict[str, Any]:
    """Poll /v1/routes/explain until ``chosen`` is first and available."""
    end = time.monotonic() + deadline
    answer: dict[str, Any] = {}
    while time.monotonic() < end:
        async with session.get(
            f"{base}/v1/routes/explain", params={"to": "+14155550100"}, headers=OPERATOR
        ) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        first = answer["candidates"][0] if answer["candidates"] else {}
        if answer["chosen"] == chosen and first.get("available"):
            return answer
        await asyncio.sleep(0.2)
    raise AssertionError(f"the plan never chose {chosen}: {answer}")


async def _deliver(session: aiohttp.ClientSession, base: str) -> str:
    """Send one message and return the connector that accepted it, once it is delivered."""
    async with session.post(
        f"{base}/v1/messages", json={"to": "+14155550100", "body": "live"}, headers=TENANT
    ) as response:
        assert response.status == 202, await response.text()
        message_id = (await response.json())["id"]
    end = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < end:
        async with session.get(f"{base}/v1/messages/{message_id}", headers=TENANT) as response:
            body = await response.json()
        if body["status"] in ("delivered", "failed"):
            break
        await asyncio.sleep(0.2)
    assert body["status"] == "delivered", body
    details = [str(event.get("detail")) for event in body["events"]]
    accepted = [d.removeprefix("accepted by ") for d in details if d.startswith("accepted by ")]
    assert len(accepted) == 1, details
    return accepted[0]


async def _run(command: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run a CLI command to completion: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out, err


async def test_connector_and_routes_added_through_the_api_apply_live(
    live_gateway: tuple[GatewayProcess, int],
) -> None:
    """A connector added and a routing table set through the API carry the next message."""
    gateway, second_port = live_gateway
    base = gateway.base_url
    async with aiohttp.ClientSession() as session:
        await _wait_for_plan(session, base, "first")
        assert await _deliver(session, base) == "first"
        async with session.post(
            f"{base}/v1/connectors",
            json={"id": "second", "type": "smpp", "options": smpp_options(second_port)},
            headers=OPERATOR,
        ) as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["options"]["password"] == "********"
        routes = [{"id": "main", "default": True, "candidates": ["second", "first"]}]
        async with session.put(
            f"{base}/v1/routes", json={"routes": routes}, headers=OPERATOR
        ) as response:
            assert response.status == 200, await response.text()
        await _wait_for_plan(session, base, "second")
        assert await _deliver(session, base) == "second"
        async with session.patch(
            f"{base}/v1/connectors/second", json={"enabled": False}, headers=OPERATOR
        ) as response:
            assert response.status == 200, await response.text()
        plan = await _wait_for_plan(session, base, "first")
        assert plan["order"][0] == "first"
        assert await _deliver(session, base) == "first"


async def test_routes_set_by_the_cli_apply_to_the_running_gateway(
    live_gateway: tuple[GatewayProcess, int], tmp_path: Path
) -> None:
    """``pigeon connectors add`` and ``pigeon routes set`` against the gateway's database,
    from another process, change where the running gateway sends the next message."""
    gateway, second_port = live_gateway
    base = gateway.base_url
    routes_file = tmp_path / "routes.toml"
    routes_file.write_text('[[routes]]\nid = "main"\ndefault = true\ncandidates = ["second"]\n')
    cli = [sys.executable, "-m", "pigeon"]
    options = [
        f"--set={name}={value!r}" if isinstance(value, str) else f"--set={name}={value}"
        for name, value in smpp_options(second_port).items()
    ]
    async with aiohttp.ClientSession() as session:
        await _wait_for_plan(session, base, "first")
        for command in (
            [*cli, "connectors", "add", "second", "--type", "smpp", *options],
            [*cli, "routes", "set", "--file", str(routes_file)],
        ):
            code, _, errors = await _run(command, gateway.env)
            assert code == 0, errors.decode()
        code, listed, _ = await _run([*cli, "connectors", "list"], gateway.env)
        assert code == 0
        assert b"s3cret" not in listed
        assert b'"second"' in listed
        await _wait_for_plan(session, base, "second")
        assert await _deliver(session, base) == "second"
