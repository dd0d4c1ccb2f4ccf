"""``bench/python_floor.py``, the yardstick of scenario c: it relays every accepted message to a
real ``pigeon smsc-sim`` and every receipt to a signed webhook, and with ``--store`` keeps the
rows it claims to keep. Its figures mean something only if it does the whole job."""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pigeon.supervisor import free_udp_port
from support.carriers import PASSWORD, SYSTEM_ID, start_smsc_sim
from support.gateway import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "pk_test_floor_0123456789"
MESSAGES = 20


class Hooks:
    """A webhook receiver on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.signed = 0
        self.arrived = asyncio.Event()

    async def hit(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.signed += request.headers.get("webhook-signature", "").startswith("v1,")
        if len(self.bodies) >= MESSAGES:
            self.arrived.set()
        return web.Response(text="ok")


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[Hooks, int]]:
    """The receiver and its port."""
    receiver = Hooks()
    app = web.Application()
    app.router.add_post("/hook", receiver.hit)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield receiver, port
    await runner.cleanup()


async def _post(session: aiohttp.ClientSession, url: str, key: str, to: str) -> int:
    async with session.post(
        url, json={"to": to, "body": "floor"}, headers={"Authorization": f"Bearer {key}"}
    ) as reply:
        await reply.read()
        return reply.status


def _start_relay(
    log: Path,
    port: int,
    sim_port: int,
    hook_port: int,
    store: tuple[str, ...],
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The relay as a child process, its errors in ``log``."""
    with log.open("wb") as relay_log:
        return subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "bench" / "python_floor.py"), "--port", str(port)),
                *("--sim-port", str(sim_port), "--sim-user", SYSTEM_ID),
                *("--sim-password", PASSWORD, "--key", KEY, *store),
                *("--webhook-url", f"http://127.0.0.1:{hook_port}/hook"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=relay_log,
            env=env,
        )


async def _run_relay(
    tmp_path: Path,
    hooks: Hooks,
    hook_port: int,
    *store: str,
    split: bool = False,
    env: dict[str, str] | None = None,
) -> None:
    """Start a sim and the relay (``split``: an accepting and a delivering process on one
    database), send ``MESSAGES`` messages and wait for their webhooks."""
    sim_port, port = free_port(), free_port()
    sim = start_smsc_sim(sim_port)
    log = tmp_path / "relay.log"
    role = ("--role", "accept") if split else ()
    relay = _start_relay(log, port, sim_port, hook_port, (*store, *role), env)
    relays = [relay]
    url = f"http://127.0.0.1:{port}/v1/messages"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:  # the sim and the relay start in their own time
                try:
                    assert await _post(session, url, "wrong", "+14155550100") == 401
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.1)
            if split:  # the accepting process has made the database by now
                deliver = (*store, "--role", "deliver")
                relays.append(
                    _start_relay(tmp_path / "deliver.log", 0, sim_port, hook_port, deliver)
                )
            statuses = await asyncio.gather(
                *(_post(session, url, KEY, f"+1415555{i:04d}") for i in range(MESSAGES))
            )
        assert statuses == [202] * MESSAGES
        await asyncio.wait_for(hooks.arrived.wait(), 30)
        if store:  # the webhook's attempt and job rows follow its answer
            database = sqlite3.connect(store[1])
            for _ in range(300):
                if not database.execute("SELECT count(*) FROM jobs").fetchone()[0]:
                    break
                await asyncio.sleep(0.1)
            database.close()
    finally:
        for process in relays:
            process.send_signal(signal.SIGTERM)
        sim.terminate()
        for process, path in zip(relays, (log, tmp_path / "deliver.log"), strict=False):
            assert process.wait(30) == 0, path.read_text()
        sim.wait(30)


@pytest.mark.slow
async def test_floor_relays_every_message_to_the_carrier_and_a_signed_webhook(
    tmp_path: Path, hooks: tuple[Hooks, int]
) -> None:
    """Without a store, each accepted message reaches the sim and comes back as one signed
    ``message.delivered`` webhook; a wrong key gets 401."""
    receiver, port = hooks
    await _run_relay(tmp_path, receiver, port)
    assert len(receiver.bodies) == MESSAGES
    assert {body["type"] for body in receiver.bodies} == {"message.delivered"}
    delivered = {body["data"]["to"] for body in receiver.bodies}  # type: ignore[index]
    assert delivered == {f"+1415555{i:04d}" for i in range(MESSAGES)}
    assert receiver.signed == MESSAGES


@pytest.mark.slow
async def test_floor_under_a_profile_dir_writes_its_call_statistics(
    tmp_path: Path, hooks: tuple[Hooks, int]
) -> None:
    """With ``PIGEON_PROFILE_DIR`` set, the relay runs under ``cProfile`` and writes
    ``floor-<pid>.pstats`` there when it stops (``bench/call_counts.py --floor``): its HTTP
    accept was called once per request, the refused one included."""
    receiver, port = hooks
    folder = tmp_path / "profiles"
    env = {**os.environ, "PIGEON_PROFILE_DIR": str(folder)}
    await _run_relay(tmp_path, receiver, port, env=env)
    written = list(folder.glob("floor-*.pstats"))
    assert len(written) == 1
    raw = pstats.Stats(str(written[0])).stats  # type: ignore[attr-defined]
    accepts = [
        row[1]
        for (file, _, name), row in raw.items()
        if file.endswith("python_floor.py") and name == "accept"
    ]
    assert accepts == [MESSAGES + 1]
    assert len(receiver.bodies) == MESSAGES


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "events"),
    [
        ((), 3),
        (("--claims",), 3),
        (("--claims", "--features"), 4),
        (("split",), 4),
        (("split-wake",), 4),
    ],
    ids=["in-memory", "claimed-jobs", "per-message-work", "two-processes", "two-woken"],
)
async def test_floor_with_a_full_store_keeps_the_rows_pigeon_keeps(
    tmp_path: Path, hooks: tuple[Hooks, int], options: tuple[str, ...], events: int
) -> None:
    """With ``--store --full-store`` (work handed on in memory or by leasing the jobs, with or
    without Pigeon's per-message work, in one process or split in two, woken over UDP or
    polling) every message ends
    delivered with its events (four
    with ``--features``: queued, sending, sent, delivered), no job left and one webhook
    attempt; with ``--features`` its part is delivered too and the webhook is the event."""
    receiver, port = hooks
    path = tmp_path / "floor.db"
    split = options in (("split",), ("split-wake",))
    if split:
        wake = ("--wake-port", str(free_udp_port())) if options == ("split-wake",) else ()
        options = ("--claims", "--features", *wake)
    store = ("--store", str(path), "--full-store", *options)
    await _run_relay(tmp_path, receiver, port, *store, split=split)
    database = sqlite3.connect(path)
    statuses = database.execute("SELECT status, count(*) FROM messages GROUP BY status")
    assert dict(statuses.fetchall()) == {"delivered": MESSAGES}
    assert database.execute("SELECT count(*) FROM events").fetchone()[0] == events * MESSAGES
    assert database.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    attempts = database.execute("SELECT status, count(*) FROM attempts GROUP BY status")
    assert dict(attempts.fetchall()) == {200: MESSAGES}
    parts = database.execute("SELECT status, count(*) FROM parts GROUP BY status").fetchall()
    if "--features" in options:
        assert dict(parts) == {"delivered": MESSAGES}
        delivered = {body["data"]["to"] for body in receiver.bodies}  # type: ignore[index]
        assert delivered == {f"+1415555{i:04d}" for i in range(MESSAGES)}
    else:
        assert parts == []
    database.close()
