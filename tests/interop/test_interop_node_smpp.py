"""Our SMPP client connector against an SMSC we did not write: node `smpp` 0.5.1.

The SMSC is ``tests/interop/node/smsc.js``; its npm dependency is installed into that folder
on first use (``npm install --no-audit --no-fund``). Without node or npm these tests skip.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pigeon.connectors.smpp_client import SmppClientConnector, SmppConnectorSettings
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import TemporaryFailure
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.testing import FakeClock

NODE_DIR = Path(__file__).parent / "node"
LONG_GSM = "Pigeon long message via node: " + "0123456789" * 36


@pytest.fixture(scope="module")
def node_smsc_script() -> Path:
    """The SMSC script, with its npm dependency installed (skip when node/npm are absent)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the node smpp interop tests")
    if not (NODE_DIR / "node_modules" / "smpp").is_dir():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return NODE_DIR / "smsc.js"


@dataclass
class NodeSmsc:
    """A running node SMSC: its port and the submits it reported."""

    port: int
    submits: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_submits(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` submits, once the SMSC has reported them."""
        async with asyncio.timeout(10):
            while len(self.submits) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.submits[:count]


@pytest.fixture
async def node_smsc(node_smsc_script: Path) -> AsyncIterator[NodeSmsc]:
    """Start the node SMSC (system_id pigeon, password secret) and stop it after the test."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(node_smsc_script),
        "pigeon",
        "secret",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    stdout = process.stdout
    first = (await asyncio.wait_for(stdout.readline(), 15)).decode()
    assert first.startswith("listening "), first
    smsc = NodeSmsc(int(first.split()[1]))

    async def collect() -> None:
        async for line in stdout:
            smsc.submits.append(json.loads(line))
            smsc.arrived.set()

    collector = asyncio.create_task(collect())
    try:
        yield smsc
    finally:
        process.terminate()
        await process.wait()
        await asyncio.gather(collector, return_exceptions=True)


def message(body: str) -> Message:
    """A queued MT message to a UK number."""
    info = analyse(body)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Message(
        id="msg_node",
        tenant_id="ten_node",
        direction=Direction.MT,
        to="+447700900123",
        sender="Pigeon",
        body=body,
        category=Category.OTP,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )


Factory = Callable[..., Awaitable[tuple[SmppClientConnector, list[DeliveryReceipt]]]]


@pytest.fixture
async def connector(node_smsc: NodeSmsc) -> AsyncIterator[Factory]:
    """Builds a started connector to the node SMSC; stops it after the test."""
    made: list[SmppClientConnector] = []

    async def make(**settings: Any) -> tuple[SmppClientConnector, list[DeliveryReceipt]]:
        receipts: list[DeliveryReceipt] = []

        async def sink(receipt: DeliveryReceipt) -> None:
            receipts.append(receipt)

        options: dict[str, Any] = {
            "id": "node",
            "host": "127.0.0.1",
            "port": node_smsc.port,
            "system_id": "pigeon",
            "password": "secret",
            "response_timeout": 5.0,
            "reconnect_min_delay": 0.1,
            "drain_timeout": 0.5,
            "unbind_timeout": 1.0,
        }
        options.update(settings)
        client = SmppClientConnector(SmppConnectorSettings(**options), sink, FakeClock())
        made.append(client)
        await client.start()
        return client, receipts

    yield make
    for client in made:
        await client.stop()


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, 10 s at most, polling every 10 ms (the sinks here
    have no event to wait on)."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polling a plain list filled by a sink
            await asyncio.sleep(0.01)


async def test_submit_through_node_smsc_and_get_its_receipt(
    node_smsc: NodeSmsc, connector: Factory
) -> None:
    """node smpp accepts our submit_sm, reads our GSM text, and its receipt reaches the sink."""
    client, receipts = await connector()
    assert client.ready
    result = await client.submit(message("Your Pigeon code is 482913 {ok}"))
    [submit] = await node_smsc.wait_submits(1)
    assert submit["text"] == "Your Pigeon code is 482913 {ok}"
    assert (submit["destination"], submit["data_coding"]) == ("447700900123", 0)
    assert result.carrier_message_ids == (submit["message_id"],)
    await until(lambda: len(receipts) == 1)
    assert receipts[0].carrier_message_id == submit["message_id"]
    assert receipts[0].status is ReceiptStatus.DELIVRD


@pytest.mark.parametrize("concat", ["udh8", "udh16"])
async def test_long_message_parts_carry_a_udh_node_understands(
    node_smsc: NodeSmsc, connector: Factory, concat: str
) -> None:
    """Each part of a long message reaches node smpp with its UDH and the texts join up."""
    client, receipts = await connector(concat=concat, binds=2)
    result = await client.submit(message(LONG_GSM))
    parts = await node_smsc.wait_submits(3)
    assert len(result.carrier_message_ids) == 3
    iei = "00" if concat == "udh8" else "08"
    assert all(p["udh"][:2] == iei for p in parts)  # node lists the elements, no UDHL
    ordered = sorted(parts, key=lambda p: int(p["udh"][-2:], 16))
    assert "".join(p["text"] for p in ordered) == LONG_GSM
    await until(lambda: len(receipts) == 3)
    assert sorted(r.carrier_message_id for r in receipts) == sorted(result.carrier_message_ids)


async def test_ucs2_text_is_read_by_node(node_smsc: NodeSmsc, connector: Factory) -> None:
    """A non-GSM text goes as UCS-2 and node smpp decodes the same text."""
    client, _ = await connector()
    await client.submit(message("Привет от Pigeon"))
    [submit] = await node_smsc.wait_submits(1)
    assert (submit["data_coding"], submit["text"]) == (8, "Привет от Pigeon")


async def test_node_refuses_a_wrong_password(node_smsc: NodeSmsc, connector: Factory) -> None:
    """node smpp refuses our bind with a wrong password: not ready, and the reason is kept."""
    client, _ = await connector(password="wrong", reconnect_min_delay=5.0)
    assert not client.ready
    assert any("ESME_RINVPASWD" in (link.last_error or "") for link in client.links)
    with pytest.raises(TemporaryFailure):
        await client.submit(message("hello"))
