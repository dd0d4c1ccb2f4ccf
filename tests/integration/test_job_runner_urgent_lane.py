"""The job runner's urgent lane on a real queue: OTP-priority jobs start while every regular
slot is busy with a backlog."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

from pigeon.ports import Job, NewJob
from pigeon.services.worker import JobRunner

if TYPE_CHECKING:
    from conftest import Stores

URGENT = 30


class _Blocking:
    """A handler that holds every backlog job until released and notes each urgent job."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.urgent_ran = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.started.append(job.id)
        if job.priority >= URGENT:
            self.urgent_ran.set()
        else:
            await self.release.wait()
        await self.stores.queue.complete(job.id, job.lease_owner)


async def _run_backlog(stores: Stores, urgent_slots: int, *, nudge: bool) -> _Blocking:
    handler = _Blocking(stores)
    now = stores.clock.now()
    backlog = [
        NewJob(id=f"m{i:02}", kind="dispatch", payload={}, run_at=now, priority=10)
        for i in range(6)
    ]
    await stores.queue.enqueue(backlog)
    runner = JobRunner(
        stores.queue,
        {"dispatch": handler},
        stores.clock,
        "w1",
        concurrency=2,
        batch=2,
        idle_seconds=60 if nudge else 0.05,
        urgent_priority=URGENT,
        urgent_slots=urgent_slots,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(500):
            if len(handler.started) == 2:
                break
            await asyncio.sleep(0.01)
        assert handler.started == ["m00", "m01"]
        otp = NewJob(id="otp", kind="dispatch", payload={}, run_at=now, priority=URGENT)
        await stores.queue.enqueue([otp])
        if nudge:
            runner.nudge(urgent=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handler.urgent_ran.wait(), timeout=2)
        started_while_full = list(handler.started)
    finally:
        handler.release.set()
        stop.set()
        runner.nudge()
        await asyncio.wait_for(running, timeout=10)
    handler.started = started_while_full
    return handler


async def test_an_urgent_nudge_starts_the_otp_while_the_backlog_holds_every_slot(
    stores: Stores,
) -> None:
    """With both regular slots held, an urgent nudge claims the OTP into a spare slot at
    once (the idle poll is a minute away)."""
    handler = await _run_backlog(stores, urgent_slots=1, nudge=True)
    assert handler.started == ["m00", "m01", "otp"]


async def test_the_idle_poll_looks_at_the_urgent_lane_too(stores: Stores) -> None:
    """Without a nudge (a lost datagram, another node's job), a full runner's idle poll still
    claims the OTP."""
    handler = await _run_backlog(stores, urgent_slots=1, nudge=False)
    assert handler.started == ["m00", "m01", "otp"]


@pytest.mark.parametrize("nudge", [True, False])
async def test_without_urgent_slots_the_otp_waits_for_the_backlog(
    stores: Stores, nudge: bool
) -> None:
    """With no urgent slots the full runner claims nothing more: the OTP waits."""
    handler = await _run_backlog(stores, urgent_slots=0, nudge=nudge)
    assert handler.started == ["m00", "m01"]
