"""Scale-out: ``pigeon worker`` processes started on their own, one database, one capped
carrier: with ``redis_url`` they keep the carrier's cap together (ADR 41), through the real
Redis on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from support.carriers import open_binds, send_paced, smpp_toml, start_smsc_sim
from support.gateway import LIVE_KEY, free_port, new_gateway

REDIS_URL = "redis://127.0.0.1:6379/0"


def _start_worker(env: dict[str, str], folder: Path, number: int) -> subprocess.Popen[bytes]:
    """A ``pigeon worker`` started on its own, its output in ``worker-N.log``."""
    with (folder / f"worker-{number}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pigeon", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )


async def test_workers_started_on_their_own_keep_a_carriers_cap_together(
    tmp_path: Path,
) -> None:
    """Two ``pigeon worker`` processes started on their own (not by ``serve``, so each would
    pace at the whole cap of 20 submits/s) send 80 messages to the carrier at no more than
    20/s in all when they share the cap through Redis, and both of them send."""
    sim_port, control_port = free_port(), free_port()
    sim = start_smsc_sim(sim_port, control_port=control_port)
    control = f"http://127.0.0.1:{control_port}"
    config = tmp_path / "pigeon.toml"
    config.write_text(smpp_toml("carrier-a", sim_port) + "throughput_per_second = 20\n")
    prefix = f"pigeon-e2e-{secrets.token_hex(4)}:"
    gateway = new_gateway(tmp_path, PIGEON_RUN_WORKERS="false", PIGEON_BOOTSTRAP_API_KEY=LIVE_KEY)
    gateway.env["PIGEON_CONFIG"] = str(config)
    worker_env = {
        **gateway.env,
        "PIGEON_REDIS_URL": REDIS_URL,
        "PIGEON_REDIS_KEY_PREFIX": prefix,
        # A few jobs at a time each, so that both take part of the 80.
        "PIGEON_WORKER_BATCH": "4",
        "PIGEON_WORKER_CONCURRENCY": "4",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        gateway.start()
        binds_of_serve = await open_binds(control)
        workers = [_start_worker(worker_env, tmp_path, n) for n in range(2)]
        deadline = time.monotonic() + 60
        while await open_binds(control) < binds_of_serve + 2:
            assert time.monotonic() < deadline, "the workers never both bound"
            assert all(worker.poll() is None for worker in workers), "a worker exited"
            await asyncio.sleep(0.2)
        headers = {"Authorization": f"Bearer {LIVE_KEY}"}
        base = gateway.base_url
        async with aiohttp.ClientSession(headers=headers) as session:
            arrivals = await send_paced(session, base, control, 80, lambda _: "marketing")
            async with session.get(f"{control}/stats") as answer:
                senders = [b for b in (await answer.json())["binds"] if b["submits"]]
        # At 20/s in all, 80 submits span about 4 s; each worker at the whole cap (no shared
        # bucket) took about 2 s.
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        assert rate <= 22, f"{rate:.1f} submits/s against a cap of 20"
        assert len(senders) == 2, f"not both workers sent: {senders}"
        for n in range(2):  # with redis_url the cap is kept together: no warning
            assert "in this process alone" not in (tmp_path / f"worker-{n}.log").read_text()
        client = aioredis.from_url(REDIS_URL)
        try:
            assert await client.exists(f"{prefix}cap:carrier-a")
        finally:
            await client.aclose()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        gateway.stop()
        sim.terminate()
        sim.wait(timeout=10)


async def test_a_worker_on_its_own_without_redis_warns_that_its_caps_are_its_own(
    tmp_path: Path,
) -> None:
    """A ``pigeon worker`` started on its own without ``redis_url`` says at start, for each
    capped carrier, that the cap holds for this process alone."""
    sim_port, control_port = free_port(), free_port()
    sim = start_smsc_sim(sim_port, control_port=control_port)
    config = tmp_path / "pigeon.toml"
    config.write_text(smpp_toml("carrier-a", sim_port) + "throughput_per_second = 20\n")
    gateway = new_gateway(tmp_path, PIGEON_RUN_WORKERS="false")
    gateway.env["PIGEON_CONFIG"] = str(config)
    worker: subprocess.Popen[bytes] | None = None
    log = tmp_path / "worker-0.log"
    try:
        gateway.start()
        worker = _start_worker({**gateway.env, "PIGEON_REDIS_URL": ""}, tmp_path, 0)
        deadline = time.monotonic() + 60
        while "in this process alone" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            assert worker.poll() is None, log.read_text(errors="replace")
            await asyncio.sleep(0.2)
        assert "connector carrier-a is capped at 20 submits/s" in log.read_text()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)
        gateway.stop()
        sim.terminate()
        sim.wait(timeout=10)
