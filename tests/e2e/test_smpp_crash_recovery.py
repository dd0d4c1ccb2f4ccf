"""Crash safety over SMPP: SIGKILL while an ESME streams submits loses nothing it got an id for."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from pigeon.domain.encoding import encode_gsm7
from pigeon.smpp import tlv
from pigeon.smpp.concat import concat_udh
from pigeon.smpp.constants import CommandStatus, GsmFeature
from pigeon.smpp.pdu import SubmitSm
from support.esme import Esme
from support.gateway import (
    API_KEY,
    SMPP_PASSWORD,
    SMPP_SYSTEM_ID,
    GatewayProcess,
    started_gateway,
)

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
TARGET = 300
WINDOW = 50
RETRIED = {CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL, CommandStatus.ESME_RSYSERR}
FINAL = {"delivered", "undelivered", "expired", "failed", "rejected", "canceled", "unknown"}


def pdus(n: int) -> list[SubmitSm]:
    """Message n: every fifth one in 2 UDH parts, the others a single submit_sm."""
    base = SubmitSm(
        source_addr_ton=5,
        source_addr="Pigeon",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="14155550100",
        registered_delivery=1,
    )
    if n % 5:
        return [_with(base, short_message=encode_gsm7(f"crash test {n}"))]
    text = f"long crash test {n} " + "x" * 200
    chunks = [text[:153], text[153:]]
    return [
        _with(
            base,
            esm_class=GsmFeature.UDHI,
            short_message=concat_udh(n % 256, 2, seq) + encode_gsm7(chunk),
        )
        for seq, chunk in enumerate(chunks, 1)
    ]


def _with(pdu: SubmitSm, **fields: object) -> SubmitSm:
    return dataclasses.replace(pdu, **fields)  # type: ignore[arg-type]


class Stream:
    """Submits message after message with up to WINDOW in flight; remembers the answers."""

    def __init__(self) -> None:
        self.answered: dict[tuple[int, int], str] = {}  # (message n, part index) -> id
        self.enough = asyncio.Event()

    async def run(self, esme: Esme) -> None:
        slots = asyncio.Semaphore(WINDOW)
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        try:
            while not esme.closed.is_set():
                n += 1
                for index, pdu in enumerate(pdus(n)):
                    await slots.acquire()
                    task = asyncio.create_task(self._one(esme, (n, index), pdu, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(
        self, esme: Esme, key: tuple[int, int], pdu: SubmitSm, slots: asyncio.Semaphore
    ) -> None:
        try:
            while True:
                try:
                    response = await esme.send(pdu)
                except ConnectionError:
                    return
                # A real ESME sends a throttled part again: one it dropped would leave its
                # message's other parts waiting for it (and their reference taken).
                if response.command_status not in RETRIED or esme.closed.is_set():
                    break
                await asyncio.sleep(0.05)
        finally:
            slots.release()
        if response.command_status == CommandStatus.ESME_ROK:
            self.answered[key] = str(getattr(response, "message_id", ""))
            if len(self.answered) >= TARGET:
                self.enough.set()


def receipt_ids(esme: Esme) -> set[str]:
    return {pdu.tlv(tlv.RECEIPTED_MESSAGE_ID) or "" for pdu in esme.delivered}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """``pigeon serve`` whose job leases last an hour: only a takeover of the killed process's
    leases at restart lets the jobs it held run again within the test (ADR 42)."""
    with started_gateway(tmp_path, PIGEON_LEASE_SECONDS="3600") as process:
        yield process


async def test_sigkill_mid_smpp_stream_loses_no_answered_message(gateway: GatewayProcess) -> None:
    """Every id answered before a SIGKILL reaches a final status and gets its receipt."""
    stream = Stream()
    esme = await Esme.open(gateway.smpp_port)
    assert (await esme.bind(SMPP_SYSTEM_ID, SMPP_PASSWORD)).command_status == 0
    streaming = asyncio.create_task(stream.run(esme))
    await asyncio.wait_for(stream.enough.wait(), timeout=120)
    gateway.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(streaming, 30)
    before = receipt_ids(esme)
    await esme.close()

    gateway.start()
    again = await Esme.open(gateway.smpp_port)
    assert (await again.bind(SMPP_SYSTEM_ID, SMPP_PASSWORD)).command_status == 0
    # An ESME finishes what it started: every part of a cut-short long message that got no
    # answer, whether it was sent before the crash or still waiting for a window slot.
    started = {n for (n, _) in stream.answered if len(pdus(n)) > 1}
    resent: set[str] = set()
    for n in sorted(started):
        for index, pdu in enumerate(pdus(n)):
            if (n, index) not in stream.answered:
                response = await again.request(pdu)
                assert response.command_status == CommandStatus.ESME_ROK
                stream.answered[(n, index)] = str(getattr(response, "message_id", ""))
                resent.add(stream.answered[(n, index)].split(".", 1)[0])

    ids = set(stream.answered.values())
    messages = {message_id.split(".", 1)[0] for message_id in ids}
    pending = set(messages)
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while pending and time.monotonic() < deadline:
            for message_id in list(pending):
                async with session.get(
                    f"{gateway.base_url}/v1/messages/{message_id}", headers=HEADERS
                ) as response:
                    keys = sorted(k for k, v in stream.answered.items() if v.startswith(message_id))
                    when = "after" if message_id in resent else "before"
                    assert response.status == 200, (
                        f"{message_id} lost: {response.status}; answered for {keys} ({when} "
                        "the restart)"
                    )
                    if (await response.json())["status"] in FINAL:
                        pending.discard(message_id)
            if pending:
                await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} of {len(messages)} never reached a final status"
    await again.wait_for(lambda: ids <= before | receipt_ids(again), timeout=120)
    await again.close()
