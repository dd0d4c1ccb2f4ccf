"""Carrier simulators for end-to-end tests: ``pigeon smsc-sim`` child processes on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import aiohttp

#: The bind credentials every simulator started here accepts.
SYSTEM_ID = "pigeon"
PASSWORD = "s3cret"


def start_smsc_sim(
    port: int, *faults: str, control_port: int | None = None
) -> subprocess.Popen[bytes]:
    """A ``pigeon smsc-sim`` on 127.0.0.1:``port`` sending receipts after 0.1 s, with
    ``faults`` (``--fault`` values such as ``error:0x45``) and, given ``control_port``, its
    control API there (``GET /stats``)."""
    fault_args = [arg for fault in faults for arg in ("--fault", fault)]
    if control_port is not None:
        fault_args += ["--control-port", str(control_port)]
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pigeon", "smsc-sim", "--port", str(port)),
            *("--system-id", SYSTEM_ID, "--password", PASSWORD, "--receipt-delay", "0.1"),
            *fault_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def smpp_options(port: int) -> dict[str, object]:
    """Options of an ``smpp`` connector to the simulator on ``port``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "window": 20,
        "reconnect_min_delay": 0.1,
    }


def smpp_toml(connector_id: str, port: int) -> str:
    """A ``[[connectors]]`` table for the simulator on ``port``."""
    return (
        f'[[connectors]]\nid = "{connector_id}"\ntype = "smpp"\nhost = "127.0.0.1"\n'
        f'port = {port}\nsystem_id = "{SYSTEM_ID}"\npassword = "{PASSWORD}"\nwindow = 20\n'
        "reconnect_min_delay = 0.1\n\n"
    )


async def open_binds(control_url: str) -> int:
    """The binds open at the simulator with this control API."""
    async with aiohttp.ClientSession() as session, session.get(f"{control_url}/stats") as answer:
        stats = await answer.json()
    return sum(1 for bind in stats["binds"] if bind["open"])


async def send_paced(
    session: aiohttp.ClientSession,
    base_url: str,
    control_url: str,
    count: int,
    category: Callable[[int], str],
) -> list[float]:
    """POST ``count`` messages ("paced N", of ``category(N)``) through ``session`` (which
    carries the key) and wait until the simulator got them all: their arrival times there
    (``time.monotonic()`` of the host), in order."""
    for n in range(count):
        body = {"to": "+14155550100", "body": f"paced {n}", "category": category(n)}
        async with session.post(f"{base_url}/v1/messages", json=body) as response:
            assert response.status == 202, await response.text()
    arrivals: list[float] = []
    deadline = time.monotonic() + 60
    while len(arrivals) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        async with session.get(f"{control_url}/received?match=paced") as answer:
            arrivals = sorted(m["monotonic"] for m in (await answer.json())["messages"])
    assert len(arrivals) == count, f"{len(arrivals)} of {count} reached the carrier"
    return arrivals
