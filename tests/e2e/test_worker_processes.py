"""``pigeon serve`` with worker processes: the children do the work and are kept running."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from support.carriers import open_binds, send_paced, smpp_toml, start_smsc_sim
from support.gateway import API_KEY, LIVE_KEY, GatewayProcess, free_port, new_gateway

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def children_of(pid: int) -> set[int]:
    """The ``pigeon worker`` processes whose parent is ``pid``."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"worker" in command:
            found.add(int(entry.name))
    return found


def wal_syncs_of(pid: int) -> set[int]:
    """The WAL sync processes (ADR 36) whose parent is ``pid``."""
    found: set[int] = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"wal_file.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
        except OSError:
            continue
    return found


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check()`` until it is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def send_and_deliver(base: str, count: int) -> None:
    """Send ``count`` test messages and wait until every one is delivered."""
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        ids = []
        for n in range(count):
            async with session.post(
                f"{base}/v1/messages", json={"to": "+14155550100", "body": f"w {n}"}
            ) as response:
                assert response.status == 202
                ids.append((await response.json())["id"])
        pending = set(ids)
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            for message_id in list(pending):
                async with session.get(f"{base}/v1/messages/{message_id}") as response:
                    if (await response.json())["status"] == "delivered":
                        pending.discard(message_id)
            await asyncio.sleep(0.2)
        assert not pending, f"{len(pending)} of {count} not delivered"


def report_folder_of(pid: int) -> str:
    """Where worker ``pid`` writes its reports (its ``PIGEON_WORKER_REPORT_DIR``)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = next(v for v in environ if v.startswith(b"PIGEON_WORKER_REPORT_DIR="))
    return found.split(b"=", 1)[1].decode()


def is_folder(path: str) -> bool:
    """Whether ``path`` is a folder now."""
    return Path(path).is_dir()


async def delivered_in_metrics(base: str) -> float:
    """``serve``'s ``/metrics`` count of status changes to ``delivered``, over every label."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    return sum(
        float(match[1])
        for match in re.finditer(
            r'^pigeon_message_status_changes_total\{[^}]*status="delivered"[^}]*\} (\S+)$',
            text,
            re.MULTILINE,
        )
    )


async def wait_for_delivered_in_metrics(base: str, count: float) -> None:
    """Poll ``/metrics`` until it counts ``count`` deliveries."""
    deadline = time.monotonic() + 30
    seen = await delivered_in_metrics(base)
    while seen != count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        seen = await delivered_in_metrics(base)
    assert seen == count, f"/metrics counts {seen} deliveries, not {count}"


async def wait_for_delivery_rate_in_metrics(base: str) -> None:
    """Poll ``/metrics`` until the simulator's delivery rate over the last hour shows (the
    workers' stored figures: they flush every few seconds)."""
    wanted = 'pigeon_connector_delivery_rate{connector="simulator",window="1h"} 1.0'
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as answer:
            text = await answer.text()
        if wanted in text.splitlines():
            return
        await asyncio.sleep(0.5)
    rates = [line for line in text.splitlines() if "delivery_rate" in line]
    raise AssertionError(f"no delivery rate of 1.0 in /metrics: {rates}")


async def test_worker_processes_deliver_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    """Two workers (and the OTP worker) deliver every message, and serve's /metrics counts
    their deliveries and shows their delivery rate; one SIGKILLed is restarted, delivery goes
    on, and its counts stay."""
    gateway: GatewayProcess = new_gateway(tmp_path, PIGEON_WORKER_PROCESSES="2")
    gateway.start()
    try:
        assert gateway.process is not None
        serve = gateway.process.pid
        await wait_for(lambda: len(children_of(serve)) == 3, "three worker processes")
        await send_and_deliver(gateway.base_url, 40)
        await wait_for_delivered_in_metrics(gateway.base_url, 40)
        await wait_for_delivery_rate_in_metrics(gateway.base_url)
        victim = min(children_of(serve))
        reports = report_folder_of(victim)
        assert is_folder(reports)
        os.kill(victim, signal.SIGKILL)
        await wait_for(
            lambda: len(children_of(serve)) == 3 and victim not in children_of(serve),
            "a replacement worker",
        )
        await send_and_deliver(gateway.base_url, 40)
        await wait_for_delivered_in_metrics(gateway.base_url, 80)
    finally:
        gateway.stop()
    assert gateway.process is not None
    assert gateway.process.returncode == 0
    assert children_of(serve) == set()
    assert not is_folder(reports)  # serve removed its workers' report folder


async def test_workers_stop_when_serve_is_killed(tmp_path: Path) -> None:
    """SIGKILL of serve leaves no worker behind: each notices its parent is gone and stops,
    and every WAL sync process (serve's, the worker's) ends with its writer's process."""
    gateway = new_gateway(tmp_path, PIGEON_WORKER_PROCESSES="1", PIGEON_WORKER_URGENT_PROCESSES="0")
    gateway.start()
    assert gateway.process is not None
    serve = gateway.process.pid
    await wait_for(lambda: len(children_of(serve)) == 1, "a worker process")
    orphans = children_of(serve)
    await wait_for(lambda: bool(wal_syncs_of(serve)), "serve's WAL sync process")
    syncers = {pid for owner in (serve, *orphans) for pid in wal_syncs_of(owner)}
    gateway.kill()

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in orphans | syncers)

    await wait_for(gone, "the orphaned worker and the WAL sync processes to stop", timeout=30)


def lane_of(pid: int) -> str:
    """The ``PIGEON_JOB_LANE`` a worker process was started with."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"PIGEON_JOB_LANE="):
            return item.split(b"=", 1)[1].decode()
    return ""


async def stop_worker_of_lane(gateway: GatewayProcess, lane: str) -> int:
    """Once ``serve`` runs its regular and its OTP worker, SIGSTOP the one of ``lane``; its
    pid (to SIGCONT)."""
    assert gateway.process is not None
    serve = gateway.process.pid
    await wait_for(lambda: len(children_of(serve)) == 2, "two worker processes")
    lanes = {lane_of(pid): pid for pid in children_of(serve)}
    assert set(lanes) == {"regular", "urgent"}
    os.kill(lanes[lane], signal.SIGSTOP)
    return lanes[lane]


async def status_of(session: aiohttp.ClientSession, base: str, message_id: str) -> str:
    """A message's status through the API."""
    async with session.get(f"{base}/v1/messages/{message_id}") as response:
        return str((await response.json())["status"])


async def test_the_otp_worker_sends_otps_while_the_others_are_stuck(tmp_path: Path) -> None:
    """With the regular worker stopped (SIGSTOP), an OTP is still sent, by the OTP worker
    process, while a marketing message waits; once the worker goes on, both are delivered."""
    gateway = new_gateway(tmp_path, PIGEON_WORKER_PROCESSES="1")
    gateway.start()
    stopped: int | None = None
    try:
        stopped = await stop_worker_of_lane(gateway, "regular")
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            ids = {}
            for category in ("marketing", "otp"):
                body = {"to": "+14155550100", "body": f"{category} 1", "category": category}
                async with session.post(f"{gateway.base_url}/v1/messages", json=body) as response:
                    assert response.status == 202
                    ids[category] = (await response.json())["id"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if await status_of(session, gateway.base_url, ids["otp"]) in ("sent", "delivered"):
                    break
                await asyncio.sleep(0.1)
            assert await status_of(session, gateway.base_url, ids["otp"]) in ("sent", "delivered")
            assert await status_of(session, gateway.base_url, ids["marketing"]) == "queued"
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            deadline = time.monotonic() + 60
            statuses: set[str] = set()
            while time.monotonic() < deadline:
                statuses = {await status_of(session, gateway.base_url, i) for i in ids.values()}
                if statuses == {"delivered"}:
                    break
                await asyncio.sleep(0.2)
            assert statuses == {"delivered"}
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        gateway.stop()


async def test_the_other_workers_take_over_otps_when_the_otp_worker_is_stuck(
    tmp_path: Path,
) -> None:
    """With the OTP worker stopped (SIGSTOP), an OTP is still delivered: the regular worker
    takes it once it has waited ``worker_urgent_takeover_seconds``."""
    gateway = new_gateway(
        tmp_path, PIGEON_WORKER_PROCESSES="1", PIGEON_WORKER_URGENT_TAKEOVER_SECONDS="1"
    )
    gateway.start()
    stopped: int | None = None
    try:
        stopped = await stop_worker_of_lane(gateway, "urgent")
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            body = {"to": "+14155550100", "body": "code 1", "category": "otp"}
            async with session.post(f"{gateway.base_url}/v1/messages", json=body) as response:
                assert response.status == 202
                otp = (await response.json())["id"]
            deadline = time.monotonic() + 30
            status = ""
            while time.monotonic() < deadline:
                status = await status_of(session, gateway.base_url, otp)
                if status == "delivered":
                    break
                await asyncio.sleep(0.2)
            assert status == "delivered"
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        gateway.stop()


async def test_serve_leaves_the_smpp_binds_to_its_workers(tmp_path: Path) -> None:
    """With worker processes only they bind an SMPP carrier (serve spends none of the binds a
    carrier allows), serve's /readyz reports the links the workers hold, and messages go."""
    sim_port, control_port = free_port(), free_port()
    sim = start_smsc_sim(sim_port, control_port=control_port)
    control = f"http://127.0.0.1:{control_port}"
    config = tmp_path / "pigeon.toml"
    config.write_text(smpp_toml("carrier-a", sim_port))
    gateway = new_gateway(tmp_path, PIGEON_WORKER_PROCESSES="1", PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        gateway.start()
        base = gateway.base_url

        async def ready() -> bool:
            async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz") as answer:
                return answer.status == 200 and (await answer.json())["checks"]["connectors"]

        deadline = time.monotonic() + 30
        while not await ready():
            assert time.monotonic() < deadline, "serve never reported the workers' links ready"
            await asyncio.sleep(0.2)
        while await open_binds(control) < 2:  # the worker's and the OTP worker's
            assert time.monotonic() < deadline, "the workers never both bound"
            await asyncio.sleep(0.2)

        headers = {"Authorization": f"Bearer {LIVE_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(
                f"{base}/v1/messages", json={"to": "+14155550100", "body": "via the workers"}
            ) as response:
                assert response.status == 202
                message_id = (await response.json())["id"]
            status = ""
            deadline = time.monotonic() + 30
            while status != "delivered" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with session.get(f"{base}/v1/messages/{message_id}") as response:
                    status = (await response.json())["status"]
            assert status == "delivered"
        assert await open_binds(control) == 2  # and none of serve's
    finally:
        gateway.stop()
        sim.terminate()
        sim.wait(timeout=10)


async def test_the_workers_together_keep_to_a_carriers_throughput_cap(tmp_path: Path) -> None:
    """A carrier capped at 20 submits/s gets no more than that from the worker and the OTP
    worker together while both send (each paces at a part of the cap that serve shares)."""
    sim_port, control_port = free_port(), free_port()
    sim = start_smsc_sim(sim_port, control_port=control_port)
    control = f"http://127.0.0.1:{control_port}"
    config = tmp_path / "pigeon.toml"
    config.write_text(smpp_toml("carrier-a", sim_port) + "throughput_per_second = 20\n")
    gateway = new_gateway(tmp_path, PIGEON_WORKER_PROCESSES="1", PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    gateway.env["PIGEON_CONFIG"] = str(config)
    try:
        gateway.start()
        base = gateway.base_url
        deadline = time.monotonic() + 30
        while await open_binds(control) < 2:
            assert time.monotonic() < deadline, "the workers never both bound"
            await asyncio.sleep(0.2)
        headers = {"Authorization": f"Bearer {LIVE_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            arrivals = await send_paced(
                session, base, control, 80, lambda n: "otp" if n % 3 == 0 else "marketing"
            )
        # Paced at 20/s in all, 80 submits span about 4 s (a stall of a process only
        # lengthens that); two processes pacing at the whole cap each took about 2 s.
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        assert rate <= 22, f"{rate:.1f} submits/s against a cap of 20"
    finally:
        gateway.stop()
        sim.terminate()
        sim.wait(timeout=10)
